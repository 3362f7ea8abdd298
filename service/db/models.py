"""SQLAlchemy 2.0 tables: problems, runs, programs, llm_samples, evaluations.

The single source of truth.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from evaluators import tree

# SQLite only auto-increments INTEGER PRIMARY KEY; PostgreSQL gets BIGINT identities.
Id = BigInteger().with_variant(Integer(), "sqlite")


def utcnow() -> datetime:
    """Returns the current time in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base; JSON columns hold dicts and lists."""

    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class ProblemRow(Base):
    """A problem as submitted: where its folder is and what its problem.toml said."""

    __tablename__ = "problems"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    path: Mapped[str] = mapped_column(Text)
    description: Mapped[str] = mapped_column(Text, default="")
    score_metric: Mapped[str] = mapped_column(String(200), default="combined_score")
    direction: Mapped[str] = mapped_column(String(16), default="maximize")
    best_known: Mapped[float | None] = mapped_column(Float, nullable=True)
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    owner_token_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)


class RunRow(Base):
    """One evolutionary run: its config, status, counters and its driving controller's lease."""

    __tablename__ = "runs"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id", ondelete="CASCADE"),
                                            index=True)
    status: Mapped[str] = mapped_column(String(16), default="created")
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    seed: Mapped[int] = mapped_column(Integer, default=0)
    iterations: Mapped[int] = mapped_column(Integer, default=0)
    llm_calls: Mapped[int] = mapped_column(Integer, default=0)
    prompt_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    completion_tokens: Mapped[int] = mapped_column(BigInteger, default=0)
    evaluations: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    best_program_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    best_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    initial_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    last_improvement_iteration: Mapped[int] = mapped_column(Integer, default=0)
    cost: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    elapsed_s: Mapped[float] = mapped_column(Float, default=0.0)
    stop_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    lease_owner: Mapped[str | None] = mapped_column(String(200), nullable=True)
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    owner_token_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    control: Mapped[str | None] = mapped_column(String(16), nullable=True)  # pause | stop request
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class LLMSampleRow(Base):
    """One completion: the prompt, the answer, who wrote it, its cost, and what became of it."""

    __tablename__ = "llm_samples"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    parent_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    iteration: Mapped[int] = mapped_column(Integer)
    group_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    prompt: Mapped[list[Any]] = mapped_column(default=list)
    completion: Mapped[str] = mapped_column(Text, default="")
    finish_reason: Mapped[str | None] = mapped_column(String(32), nullable=True)
    model: Mapped[str] = mapped_column(String(300), default="")
    adapter: Mapped[str | None] = mapped_column(String(300), nullable=True)
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    latency_s: Mapped[float] = mapped_column(Float, default=0.0)
    outcome: Mapped[str] = mapped_column(String(16), default="pending")
    rejection: Mapped[str | None] = mapped_column(Text, nullable=True)
    # how the answer's form was repaired before it was read ("dedent", "strip_prose+fence", ...);
    # NULL: read as written (service/edits/repair.py)
    repair: Mapped[str | None] = mapped_column(String(64), nullable=True)
    reward: Mapped[float | None] = mapped_column(Float, nullable=True)
    kind: Mapped[str | None] = mapped_column(String(16), nullable=True)  # mutation | crossover
    island: Mapped[int | None] = mapped_column(Integer, nullable=True)
    temperature: Mapped[float | None] = mapped_column(Float, nullable=True)
    cost: Mapped[float | None] = mapped_column(Float, nullable=True)
    nearest_program_id: Mapped[int | None] = mapped_column(Id, nullable=True)  # too_similar
    similarity: Mapped[float | None] = mapped_column(Float, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ProgramRow(Base):
    """A program of a run: a row before it is evaluated, updated with its metrics once scored."""

    __tablename__ = "programs"
    __table_args__ = (
        Index("ix_programs_run_hash", "run_id", "code_hash"),
        Index("ix_programs_run_score", "run_id", "score"),
        Index("ix_programs_run_status", "run_id", "status"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    parent_id: Mapped[int | None] = mapped_column(Id, nullable=True, index=True)
    sample_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    kind: Mapped[str] = mapped_column(String(16), default="mutation")  # initial|mutation|migrant
    inspiration_ids: Mapped[list[Any]] = mapped_column(default=list)
    island: Mapped[int] = mapped_column(Integer, default=0)
    generation: Mapped[int] = mapped_column(Integer, default=0)
    iteration: Mapped[int] = mapped_column(Integer, default=0)
    # the program's files by relative path (evaluators/tree.py); a single-file program is
    # {"program.py": text}. `code` is their one text form.
    files: Mapped[dict[str, Any]] = mapped_column(default=dict)
    code_hash: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    duplicate_of: Mapped[int | None] = mapped_column(Id, nullable=True)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    score: Mapped[float | None] = mapped_column(Float, nullable=True)
    features: Mapped[dict[str, Any]] = mapped_column(default=dict)
    artifacts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    failure_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    # failed: why; scored: the error its evaluator reported, if any (EvalResult.reported_error)
    failure_reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    model: Mapped[str | None] = mapped_column(String(300), nullable=True)
    adapter: Mapped[str | None] = mapped_column(String(300), nullable=True)
    in_archive: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    evaluated_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # Verification tier of the score: NULL = evaluated once; "strict" = re-verified in a fresh
    # sandbox by a two-phase problem's trusted scorer; "reevaluated" = reproduced in a fresh
    # sandbox by an in-sandbox evaluator; "stochastic" = scored again several times, the score
    # varies (verify_note: sd, mean); "failed" = re-verification failed (verify_note says why).
    tier: Mapped[str | None] = mapped_column(String(16), nullable=True)
    verified_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    verify_note: Mapped[str | None] = mapped_column(Text, nullable=True)
    verified_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)

    @property
    def code(self) -> str:
        """Returns the program's text form: its one file, or each file under its path header."""
        return tree.join(self.files)

    @code.setter
    def code(self, text: str) -> None:
        self.files = tree.split(text)


class EvaluationRow(Base):
    """One evaluation attempt of a program: queued before it starts, closed with its outcome."""

    __tablename__ = "evaluations"
    __table_args__ = (Index("ix_evaluations_status_queue", "status", "queue"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"),
                                            index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer, default=1)
    # queued | running | ok | failed | lost
    status: Mapped[str] = mapped_column(String(16), default="queued")
    executor: Mapped[str] = mapped_column(String(32), default="local")
    worker: Mapped[str | None] = mapped_column(String(200), nullable=True)
    stage: Mapped[int] = mapped_column(Integer, default=0)
    error_kind: Mapped[str | None] = mapped_column(String(32), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    duration_s: Mapped[float | None] = mapped_column(Float, nullable=True)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)  # written by workers
    layers: Mapped[list[str] | None] = mapped_column(JSON, nullable=True)  # sandbox layers it had
    deliveries: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queue: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ApiTokenRow(Base):
    """An API token: only the sha256 of its secret is kept; scope read | write | admin."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(200))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    max_active_runs: Mapped[int | None] = mapped_column(Integer, nullable=True)
    acts_for: Mapped[int | None] = mapped_column(Id, nullable=True)  # shares this token's rows
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class ProgramEmbeddingRow(Base):
    """A program's code embedding (novelty rejection), computed once per program."""

    __tablename__ = "program_embeddings"

    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id", ondelete="CASCADE"),
                                            primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200))
    vector: Mapped[list[Any]] = mapped_column(default=list)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class ScratchpadRow(Base):
    """One version of a run's meta-scratchpad: the digest the LLM read and the insights it wrote."""

    __tablename__ = "scratchpads"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    version: Mapped[int] = mapped_column(Integer)
    iteration: Mapped[int] = mapped_column(Integer)
    digest: Mapped[str] = mapped_column(Text, default="")
    text: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str] = mapped_column(String(300), default="")
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AdapterRow(Base):
    """One published LoRA adapter version of a run's mutation model (service/rl/adapters.py)."""

    __tablename__ = "adapters"
    __table_args__ = (Index("ix_adapters_run_version", "run_id", "version", unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(200))
    version: Mapped[int] = mapped_column(Integer)
    base_model: Mapped[str] = mapped_column(Text)
    steps: Mapped[int] = mapped_column(Integer, default=0)
    reward_stats: Mapped[dict[str, Any]] = mapped_column(default=dict)
    path: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class RLRoundRow(Base):
    """One external training round of a run (rl.trainer = "external"): the controller marks it
    due, one `evoforge trainer` claims it under a lease, trains, and records its adapter."""

    __tablename__ = "rl_rounds"
    __table_args__ = (Index("ix_rl_rounds_run_number", "run_id", "number", unique=True),
                      Index("ix_rl_rounds_status", "status"))

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    number: Mapped[int] = mapped_column(Integer)  # 1, 2, ... within the run
    # due | training | done | failed | expired | skipped (service/rl/rounds.py)
    status: Mapped[str] = mapped_column(String(16), default="due")
    evaluations: Mapped[int] = mapped_column(Integer, default=0)  # the run's count when due
    steps: Mapped[int] = mapped_column(Integer, default=1)  # GRPO steps that fit the budget
    trainer: Mapped[str | None] = mapped_column(String(200), nullable=True)  # host:pid
    lease_expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True),
                                                              nullable=True)
    adapter_id: Mapped[int | None] = mapped_column(Id, nullable=True)
    served_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class FleetMemberRow(Base):
    """A worker or controller as its heartbeats describe it (service/db/fleet.py): one row per
    process, refreshed every heartbeat; stopped_at set when it shut down cleanly."""

    __tablename__ = "fleet"

    id: Mapped[int] = mapped_column(Id, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(16))  # worker | controller
    name: Mapped[str] = mapped_column(String(200), unique=True)  # Celery node name | host:pid
    host: Mapped[str] = mapped_column(String(200))
    pid: Mapped[int] = mapped_column(Integer)
    queues: Mapped[list[Any]] = mapped_column(default=list)
    concurrency: Mapped[int] = mapped_column(Integer, default=1)  # pool size | max runs
    version: Mapped[str] = mapped_column(String(64), default="")
    heartbeat_s: Mapped[float] = mapped_column(Float, default=10.0)
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    stopped_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
