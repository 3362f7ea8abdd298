"""The engine's bookkeeping: every sample, candidate and evaluation becomes a row before work starts."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from sqlalchemy import update

from evaluators.jobs import EvalResult
from service.archive import Member
from service.db import Database
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow, utcnow
from service.db.queries import open_evaluation
from service.llm.base import Completion, Message


@dataclass
class Child:
    """A proposed child: its sample row, and its program row unless the edit was rejected."""

    sample_id: int
    program_id: int | None
    evaluation_id: int | None
    outcome: str  # child | rejected | duplicate | unchanged


class Ledger:
    """Writes the rows of one run."""

    def __init__(self, db: Database, run_id: int, executor: str) -> None:
        self.db = db
        self.run_id = run_id
        self.executor = executor

    def add_initial(self, code: str, code_hash: str) -> tuple[int, int]:
        """Stores the initial program and its queued evaluation; returns (program id, evaluation id)."""
        with self.db.session() as s:
            prog = ProgramRow(run_id=self.run_id, kind="initial", code=code, code_hash=code_hash,
                              status="pending", island=0, generation=0, iteration=0)
            s.add(prog)
            s.flush()
            ev = open_evaluation(s, prog, self.executor)
            return prog.id, ev.id

    def add_child(self, *, iteration: int, parent: Member, inspirations: list[Member], island: int,
                  prompt: list[Message], completion: Completion, group_id: str, code: str | None,
                  code_hash: str | None, rejection: str | None, duplicate_of: int | None,
                  parent_generation: int) -> Child:
        """Stores one completion and what it produced, counting the iteration on the run."""
        with self.db.session() as s:
            sample = LLMSampleRow(
                run_id=self.run_id, parent_id=parent.id, iteration=iteration, group_id=group_id,
                prompt=[{"role": m.role, "content": m.content} for m in prompt],
                completion=completion.text, finish_reason=completion.finish_reason,
                model=completion.model, adapter=completion.adapter,
                prompt_tokens=completion.prompt_tokens, completion_tokens=completion.completion_tokens,
                latency_s=completion.latency_s)
            s.add(sample)
            s.execute(update(RunRow).where(RunRow.id == self.run_id)
                      .values(iterations=RunRow.iterations + 1))
            if code is None:
                sample.outcome, sample.rejection = "rejected", rejection
                s.flush()
                return Child(sample.id, None, None, "rejected")
            status = "duplicate" if duplicate_of is not None else "pending"
            outcome = ("unchanged" if duplicate_of == parent.id else "duplicate") \
                if duplicate_of is not None else "child"
            sample.outcome = outcome
            s.flush()
            prog = ProgramRow(
                run_id=self.run_id, parent_id=parent.id, sample_id=sample.id, kind="mutation",
                inspiration_ids=[m.id for m in inspirations], island=island,
                generation=parent_generation + 1, iteration=iteration, code=code,
                code_hash=code_hash or "", status=status, duplicate_of=duplicate_of,
                model=completion.model, adapter=completion.adapter)
            s.add(prog)
            s.flush()
            if duplicate_of is not None:
                return Child(sample.id, prog.id, None, outcome)
            ev = open_evaluation(s, prog, self.executor)
            return Child(sample.id, prog.id, ev.id, "child")

    def count_llm_call(self, completions: list[Completion]) -> None:
        """Adds one LLM call and its tokens to the run's counters."""
        with self.db.session() as s:
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(
                llm_calls=RunRow.llm_calls + 1,
                prompt_tokens=RunRow.prompt_tokens + sum(c.prompt_tokens for c in completions),
                completion_tokens=RunRow.completion_tokens + sum(
                    c.completion_tokens for c in completions)))

    def reopen(self, program_id: int) -> int:
        """Opens a new evaluation attempt for a program whose result never arrived."""
        with self.db.session() as s:
            prog = s.get(ProgramRow, program_id)
            prog.status = "pending"
            return open_evaluation(s, prog, self.executor).id

    def mark_running(self, evaluation_id: int) -> None:
        """Marks an evaluation as started."""
        with self.db.session() as s:
            s.execute(update(EvaluationRow).where(EvaluationRow.id == evaluation_id)
                      .values(status="running", started_at=utcnow(), worker="local"))

    def record_result(self, program_id: int, evaluation_id: int, result: EvalResult,
                      features: dict[str, float]) -> ProgramRow:
        """Writes an evaluation's outcome to its program and evaluation rows and the run counters."""
        with self.db.session() as s:
            prog = s.get(ProgramRow, program_id)
            prog.status = "ok" if result.ok else "failed"
            prog.metrics = _finite(result.metrics)
            prog.score = result.score if result.ok else None
            prog.artifacts = result.artifacts
            prog.failure_kind, prog.failure_reason = result.error_kind, result.error
            prog.features = features if result.ok else {}
            prog.evaluated_at = utcnow()
            s.execute(update(EvaluationRow).where(EvaluationRow.id == evaluation_id).values(
                status=prog.status, stage=result.stage, error_kind=result.error_kind,
                error=result.error, duration_s=result.duration_s, finished_at=utcnow()))
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(
                evaluations=RunRow.evaluations + 1,
                failed=RunRow.failed + (0 if result.ok else 1)))
            return prog

    def add_migrant(self, source: ProgramRow, island: int, iteration: int) -> ProgramRow:
        """Copies a scored program to another island (no new evaluation: same code, same score)."""
        with self.db.session() as s:
            prog = ProgramRow(
                run_id=self.run_id, parent_id=source.id, kind="migrant", island=island,
                generation=source.generation, iteration=iteration, code=source.code,
                code_hash=source.code_hash, status="ok", metrics=source.metrics,
                score=source.score, features=source.features, artifacts={},
                model=source.model, adapter=source.adapter, evaluated_at=utcnow())
            s.add(prog)
            s.flush()
            return prog

    def set_archive_flags(self, kept: list[int], evicted: list[int]) -> None:
        """Records which programs are in the archive now."""
        with self.db.session() as s:
            if kept:
                s.execute(update(ProgramRow).where(ProgramRow.id.in_(kept)).values(in_archive=True))
            if evicted:
                s.execute(update(ProgramRow).where(ProgramRow.id.in_(evicted))
                          .values(in_archive=False))

    def update_run(self, **values: Any) -> None:
        """Sets columns of the run row."""
        with self.db.session() as s:
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(**values))

    def run(self) -> RunRow:
        """Returns a fresh copy of the run row."""
        with self.db.session() as s:
            return s.get(RunRow, self.run_id)

    def program(self, program_id: int) -> ProgramRow:
        """Returns a program row."""
        with self.db.session() as s:
            return s.get(ProgramRow, program_id)


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items()
            if not isinstance(v, float) or math.isfinite(v)}
