"""The engine's bookkeeping: each sample, candidate and evaluation becomes a row before work starts.

The ledger is the one writer of a run's totals (calls, iterations, tokens, cost, evaluations,
failures, best): each write updates the run row in SQL and the in-memory Counters the budgets
read, in the same method. Totals other processes wrote (RL rollouts) are read back with
load_totals().
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db import Database, queries
from service.db.fleet import LOCAL_QUEUE
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow, utcnow
from service.db.queries import open_evaluation
from service.db.status import ProgramKind, ProgramStatus, RunStatus, RunStatusError, SampleOutcome
from service.evolution.archive import Member
from service.evolution.budget import Counters
from service.llm.base import Completion, Message
from service.telemetry import metrics


@dataclass
class Proposal:
    """One completion and what the edit made of it, before it is stored."""

    iteration: int
    parent: Member
    parent_generation: int
    inspirations: list[Member]
    island: int
    prompt: list[Message]
    completion: Completion
    code: str | None
    code_hash: str | None
    rejection: str | None
    unchanged: bool
    kind: str = "mutation"  # mutation | crossover
    similar_to: tuple[int, float] | None = None  # novelty rejection: (nearest program, similarity)
    repair: str | None = None  # the repairs of the answer's form the code took (EditResult.repair)


@dataclass
class Child:
    """A stored proposal: its sample row, and its program row unless the edit was rejected."""

    sample_id: int
    program_id: int | None
    evaluation_id: int | None
    outcome: SampleOutcome
    code_hash: str | None = None
    program: ProgramRow | None = None


class Ledger:
    """Writes the rows of one run, and keeps its totals."""

    def __init__(self, db: Database, run_id: int, executor: str,
                 queue: str | None = None) -> None:
        self.db = db
        self.run_id = run_id
        self.executor = executor
        self.queue = queue  # the Celery queue evaluations go to (None: the local pool)
        self.counters = Counters()

    def load_totals(self) -> RunRow:
        """Reads the run row's totals into the counters (on start, after an RL round); returns
        the row."""
        run = self.run()
        self.counters.load_totals(run)
        return run

    def note_best(self, prog: ProgramRow) -> None:
        """Records in memory a best program the run row already holds (replayed on restore)."""
        self.counters.improve(prog, initial=prog.kind == ProgramKind.INITIAL)

    def add_initial(self, code: str, code_hash: str) -> tuple[ProgramRow, int]:
        """Adds the initial program and its queued evaluation; returns (program, evaluation id)."""
        with self.db.session() as s:
            prog = ProgramRow(run_id=self.run_id, kind=ProgramKind.INITIAL, code=code,
                              code_hash=code_hash, status=ProgramStatus.PENDING, island=0,
                              generation=0, iteration=0)
            s.add(prog)
            s.flush()
            ev = open_evaluation(s, prog, self.executor, new=True, queue=self.queue)
            return prog, ev.id

    def add_call(self, proposals: list[Proposal], known: dict[str, int], group_id: str
                 ) -> list[Child]:
        """Stores one LLM call: its counters, every completion, the children and their queued
        evaluations, in one transaction. known maps code hashes to programs already stored."""
        completions = [p.completion for p in proposals]
        cost = sum(float(c.extra.get("cost") or 0.0) for c in completions)
        seen: dict[str, int] = {}
        with self.db.session() as s:
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(
                llm_calls=RunRow.llm_calls + 1, iterations=RunRow.iterations + len(proposals),
                **_token_values(completions, cost)))
            children = []
            for p in proposals:
                dup = None
                if p.code is not None:
                    dup = p.parent.id if p.unchanged else known.get(p.code_hash) or seen.get(
                        p.code_hash)
                child = self._add_one(s, p, dup, group_id)
                if child.outcome == SampleOutcome.CHILD:
                    seen[p.code_hash] = child.program_id
                children.append(child)
        self.counters.count_call(completions, len(proposals), cost)
        metrics.llm_usage(completions[0].model if completions else "", sum(
            c.prompt_tokens for c in completions), sum(c.completion_tokens for c in completions),
            cost)
        return children

    def add_side_call(self, completion: Completion, cost: float, rows: list[Any]) -> None:
        """Stores the rows an LLM call made beside the proposals wrote (the scratchpad's) and adds
        its tokens and cost to the run, in one transaction; counted in memory once committed."""
        with self.db.session() as s:
            s.add_all(rows)
            s.execute(update(RunRow).where(RunRow.id == self.run_id)
                      .values(**_token_values([completion], cost)))
        self.counters.count_tokens([completion], cost)

    def _add_one(self, s: Session, p: Proposal, dup: int | None, group_id: str) -> Child:
        c = p.completion
        sample = LLMSampleRow(
            run_id=self.run_id, parent_id=p.parent.id, iteration=p.iteration, group_id=group_id,
            prompt=[{"role": m.role, "content": m.content} for m in p.prompt],
            completion=c.text, finish_reason=c.finish_reason, model=c.model, adapter=c.adapter,
            prompt_tokens=c.prompt_tokens, completion_tokens=c.completion_tokens,
            latency_s=c.latency_s, kind=p.kind, island=p.island,
            temperature=c.extra.get("temperature"), cost=c.extra.get("cost"), repair=p.repair)
        if p.code is None or p.similar_to is not None:
            sample.outcome = (SampleOutcome.REJECTED if p.code is None
                              else SampleOutcome.TOO_SIMILAR)
            sample.rejection = p.rejection
            if p.similar_to is not None:
                sample.nearest_program_id, sample.similarity = p.similar_to
            s.add(sample)
            s.flush()
            return Child(sample.id, None, None, sample.outcome)
        outcome = SampleOutcome.CHILD if dup is None else (
            SampleOutcome.UNCHANGED if p.unchanged else SampleOutcome.DUPLICATE)
        sample.outcome = outcome
        s.add(sample)
        s.flush()
        prog = ProgramRow(
            run_id=self.run_id, parent_id=p.parent.id, sample_id=sample.id,
            kind=ProgramKind.MUTATION,
            inspiration_ids=[m.id for m in p.inspirations], island=p.island,
            generation=p.parent_generation + 1, iteration=p.iteration, code=p.code,
            code_hash=p.code_hash or "",
            status=ProgramStatus.PENDING if dup is None else ProgramStatus.DUPLICATE,
            duplicate_of=dup, model=c.model, adapter=c.adapter)
        s.add(prog)
        s.flush()
        if dup is not None:
            return Child(sample.id, prog.id, None, outcome, p.code_hash)
        ev = open_evaluation(s, prog, self.executor, new=True, queue=self.queue)
        return Child(sample.id, prog.id, ev.id, SampleOutcome.CHILD, p.code_hash, prog)

    def reopen(self, program_id: int) -> int:
        """Opens a new evaluation attempt for a program whose result never arrived."""
        with self.db.session() as s:
            prog = s.get(ProgramRow, program_id)
            prog.status = ProgramStatus.PENDING
            return open_evaluation(s, prog, self.executor, queue=self.queue).id

    def record_result(self, prog: ProgramRow, evaluation_id: int, result: EvalResult,
                      kept: list[int], evicted: list[int], best: bool,
                      evaluation_written: bool = False) -> None:
        """Writes an evaluation's outcome (program, evaluation, run counters, archive membership,
        new best) in one transaction; prog already holds the result (apply_result). When a worker
        already closed the evaluation row (evaluation_written), that row is left as it is."""
        now = utcnow()
        with self.db.session() as s:
            s.execute(update(ProgramRow).where(ProgramRow.id == prog.id).values(
                status=prog.status, metrics=prog.metrics, score=prog.score,
                artifacts=prog.artifacts, failure_kind=prog.failure_kind,
                failure_reason=prog.failure_reason, features=prog.features,
                evaluated_at=prog.evaluated_at, in_archive=bool(kept)))
            if not evaluation_written:
                s.execute(update(EvaluationRow).where(EvaluationRow.id == evaluation_id).values(
                    status=prog.status, stage=result.stage, error_kind=result.error_kind,
                    error=result.error, duration_s=result.duration_s, finished_at=now,
                    started_at=now - timedelta(seconds=result.duration_s), worker=self.executor,
                    layers=result.layers or None))
            run_values: dict[str, Any] = {"evaluations": RunRow.evaluations + 1,
                                          "failed": RunRow.failed + (0 if result.ok else 1)}
            if best:
                run_values.update(_best_values(prog))
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(**run_values))
            if evicted:
                s.execute(update(ProgramRow).where(ProgramRow.id.in_(evicted))
                          .values(in_archive=False))
        self.counters.count_result(result.ok)
        if not evaluation_written:  # a Celery worker counted the evaluations it closed
            metrics.evaluation(self.queue or LOCAL_QUEUE, result.status, result.error_kind,
                               result.duration_s, result.layers)
        if best:
            self.note_best(prog)

    def archive_changed(self, kept: list[int], evicted: list[int], best: ProgramRow | None) -> None:
        """Records which programs are in the archive now, and a new best program."""
        with self.db.session() as s:
            if kept:
                s.execute(update(ProgramRow).where(ProgramRow.id.in_(kept)).values(in_archive=True))
            if evicted:
                s.execute(update(ProgramRow).where(ProgramRow.id.in_(evicted))
                          .values(in_archive=False))
            if best is not None:
                s.execute(update(RunRow).where(RunRow.id == self.run_id)
                          .values(**_best_values(best)))
        if best is not None:
            self.note_best(best)

    def add_migrant(self, source: ProgramRow, island: int, iteration: int,
                    kind: ProgramKind = ProgramKind.MIGRANT) -> ProgramRow:
        """Copies a scored program to another island (no new evaluation: same code, same score);
        kind "reseed" marks the program an island reset starts the island from."""
        with self.db.session() as s:
            prog = ProgramRow(
                run_id=self.run_id, parent_id=source.id, kind=kind, island=island,
                generation=source.generation, iteration=iteration, code=source.code,
                code_hash=source.code_hash, status=ProgramStatus.OK, metrics=source.metrics,
                score=source.score, features=source.features, artifacts={},
                model=source.model, adapter=source.adapter, evaluated_at=utcnow())
            s.add(prog)
            s.flush()
            return prog

    def move_run(self, status: RunStatus, **values: Any) -> None:
        """Moves the run to status (with values); raises RunStatusError when its status may not
        move there (db/status.py)."""
        with self.db.session() as s:
            if not queries.move_run(s, self.run_id, status, **values):
                current = s.get(RunRow, self.run_id).status
                raise RunStatusError(f"run {self.run_id} is {current}; it cannot become {status}")

    def update_run(self, **values: Any) -> None:
        """Sets columns of the run row (its status moves through move_run)."""
        with self.db.session() as s:
            s.execute(update(RunRow).where(RunRow.id == self.run_id).values(**values))

    def run(self) -> RunRow:
        """Returns a fresh copy of the run row."""
        with self.db.session() as s:
            return s.get(RunRow, self.run_id)

    def latest_evaluations(self, program_ids: list[int]) -> dict[int, EvaluationRow]:
        """Returns each program's most recent evaluation row."""
        if not program_ids:
            return {}
        with self.db.session() as s:
            rows = s.scalars(select(EvaluationRow).where(EvaluationRow.program_id.in_(program_ids))
                             .order_by(EvaluationRow.id))
            return {row.program_id: row for row in rows}

    def programs(self, ids: list[int]) -> dict[int, ProgramRow]:
        """Returns the program rows with these ids, in one query."""
        with self.db.session() as s:
            return {p.id: p for p in s.scalars(select(ProgramRow).where(ProgramRow.id.in_(ids)))}


def queue_of(cfg: RunConfig) -> str | None:
    """Returns the Celery queue a run's evaluations go to (None: the local pool)."""
    return cfg.evaluation.queue if cfg.evaluation.executor == "celery" else None


def apply_result(prog: ProgramRow, result: EvalResult, features: dict[str, float]) -> None:
    """Copies an evaluation result onto a (detached) program row."""
    prog.status = ProgramStatus.OK if result.ok else ProgramStatus.FAILED
    prog.metrics = _finite(result.metrics)
    prog.score = result.score if result.ok else None
    prog.artifacts = result.artifacts
    prog.failure_kind = result.error_kind
    prog.failure_reason = result.error if not result.ok else result.reported_error
    prog.features = features if result.ok else {}
    prog.evaluated_at = utcnow()


def _token_values(completions: list[Completion], cost: float) -> dict[str, Any]:
    """Returns the run-row increments for the tokens and cost of completions."""
    return {"prompt_tokens": RunRow.prompt_tokens + sum(c.prompt_tokens for c in completions),
            "completion_tokens": RunRow.completion_tokens + sum(c.completion_tokens
                                                                for c in completions),
            "cost": RunRow.cost + cost}


def _best_values(prog: ProgramRow) -> dict[str, Any]:
    values = {"best_score": prog.score, "best_program_id": prog.id,
              "last_improvement_iteration": prog.iteration}
    if prog.kind == ProgramKind.INITIAL:
        values["initial_score"] = prog.score
    return values


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items()
            if not isinstance(v, float) or math.isfinite(v)}
