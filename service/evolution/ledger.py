"""The engine's bookkeeping: each sample, candidate and evaluation becomes a row before work starts.

The ledger is the one writer of a run's totals (calls, iterations, tokens, cost, evaluations,
failures, best): each write updates the run row in SQL and the in-memory Counters the budgets
read, in the same method. Totals other processes wrote (RL rollouts) are read back with
load_totals().
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from evaluators.jobs import EvalResult
from service.config import RunConfig
from service.db import Database, queries
from service.db.fleet import LOCAL_QUEUE
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow, utcnow
from service.db.queries import open_evaluation
from service.db.status import (
    NO_PROGRAM,
    EvaluationStatus,
    ProgramKind,
    ProgramStatus,
    RunStatus,
    RunStatusError,
    SampleOutcome,
)
from service.evolution import folded, rows
from service.evolution.budget import Counters
from service.evolution.rows import Proposal
from service.llm.base import Completion
from service.telemetry import metrics


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
        # PostgreSQL writes a call of one proposal and a result as one statement (folded.py)
        self.folds = db.engine.dialect.name == "postgresql"

    def load_totals(self) -> RunRow:
        """Reads the run row's totals into the counters (on start, after an RL round); returns
        the row."""
        run = self.run()
        self.counters.load_totals(run)
        return run

    def note_best(self, prog: ProgramRow) -> None:
        """Records in memory a best program the run row already holds (replayed on restore)."""
        self.counters.improve(prog, initial=prog.kind == ProgramKind.INITIAL)

    def add_initial(self, code: str, code_hash: str, island: int = 0) -> tuple[ProgramRow, int]:
        """Adds one starting program and its queued evaluation; returns (program, evaluation
        id)."""
        return self.add_initials([(code, code_hash, island)])[0]

    def add_initials(self, starts: list[tuple[str, str, int]]) -> list[tuple[ProgramRow, int]]:
        """Adds the starting programs, (code, code hash, island) each, and their queued
        evaluations in one transaction; returns (program, evaluation id) per start, in order."""
        out = []
        with self.db.session() as s:
            for code, digest, island in starts:
                prog = ProgramRow(run_id=self.run_id, kind=ProgramKind.INITIAL, code=code,
                                  code_hash=digest, status=ProgramStatus.PENDING, island=island,
                                  generation=0, iteration=0)
                s.add(prog)
                s.flush()
                ev = open_evaluation(s, prog, self.executor, new=True, queue=self.queue)
                out.append((prog, ev.id))
        return out

    def add_call(self, proposals: list[Proposal], known: dict[str, int], group_id: str
                 ) -> list[Child]:
        """Stores one LLM call: its counters, every completion, the children and their queued
        evaluations, in one transaction of one statement per table (executemany with RETURNING).
        known maps code hashes to programs already stored."""
        completions = [p.completion for p in proposals]
        cost = sum(float(c.extra.get("cost") or 0.0) for c in completions)
        plan = rows.fates(proposals, known)
        now = utcnow()
        if self.folds and len(proposals) == 1:
            sample_ids, programs, evaluation_ids = self._add_one(proposals[0], plan[0], group_id,
                                                                 cost, now)
        else:
            with self.db.transaction() as conn:
                conn.execute(rows.COUNT_CALL, {
                    "v_key": self.run_id, "v_iterations": len(proposals),
                    **rows.token_params(completions, cost)})
                sample_ids = rows.insert_rows(conn, LLMSampleRow, [
                    rows.sample_values(self.run_id, p, fate, group_id, now)
                    for p, fate in zip(proposals, plan, strict=True)])
                programs = self._add_programs(conn, proposals, plan, sample_ids, now)
                children = [i for i, fate in enumerate(plan)
                            if fate.outcome == SampleOutcome.CHILD]
                evaluation_ids = dict(zip(children, rows.insert_rows(conn, EvaluationRow, [
                    self._queued(programs[i].id, now) for i in children]), strict=True))
        self.counters.count_call(completions, len(proposals), cost)
        metrics.llm_usage(completions[0].model if completions else "", sum(
            c.prompt_tokens for c in completions), sum(c.completion_tokens for c in completions),
            cost)
        return [Child(sid, programs[i].id if i in programs else None, evaluation_ids.get(i),
                      fate.outcome, proposals[i].code_hash if i in programs else None,
                      programs.get(i) if i in evaluation_ids else None)
                for i, (sid, fate) in enumerate(zip(sample_ids, plan, strict=True))]

    def _queued(self, program_id: int | None, now: datetime) -> dict[str, Any]:
        """Returns the columns of a queued first evaluation of a program (its id: None when the
        statement gives it)."""
        values = {"run_id": self.run_id, "attempt": 1, "executor": self.executor,
                  "status": EvaluationStatus.QUEUED, "queue": self.queue, "created_at": now}
        return values if program_id is None else {"program_id": program_id, **values}

    def _add_one(self, p: Proposal, fate: rows.Fate, group_id: str, cost: float, now: datetime
                 ) -> tuple[list[int], dict[int, ProgramRow], dict[int, int]]:
        """Stores an LLM call of one proposal in one statement (PostgreSQL: folded.py); returns
        what add_call's transaction returns (sample ids, programs and evaluation ids by index)."""
        sample = rows.sample_values(self.run_id, p, fate, group_id, now)
        program = None if fate.outcome in NO_PROGRAM else rows.program_values(
            self.run_id, p, None, fate.duplicate_of, now)
        evaluation = self._queued(None, now) if fate.outcome == SampleOutcome.CHILD else None
        statement = folded.call_statement(tuple(sample), program and tuple(program),
                                          evaluation and tuple(evaluation))
        with self.db.autocommit() as conn:
            ids = conn.execute(statement, {
                "c_key": self.run_id, "c_iterations": 1,
                **rows.token_params([p.completion], cost, prefix="c_"),
                **rows.prefixed("s_", sample), **rows.prefixed("p_", program or {}),
                **rows.prefixed("e_", evaluation or {})}).one()
        programs = {} if program is None else {0: ProgramRow(id=ids[1], sample_id=ids[0],
                                                             **program)}
        return [ids[0]], programs, {} if evaluation is None else {0: ids[2]}

    def _add_programs(self, conn: Connection, proposals: list[Proposal], plan: list[rows.Fate],
                      sample_ids: list[int], now: datetime) -> dict[int, ProgramRow]:
        """Inserts the program rows of a call's proposals, in their order; a duplicate of a child
        of the same call goes in a second statement, once its twin has an id. Returns the rows
        (transient, with their ids) by proposal index."""
        programs: dict[int, ProgramRow] = {}
        stored = [i for i, fate in enumerate(plan) if fate.outcome not in NO_PROGRAM]
        for wave in ([i for i in stored if plan[i].twin is None],
                     [i for i in stored if plan[i].twin is not None]):
            values = []
            for i in wave:
                twin = plan[i].twin
                dup = programs[twin].id if twin is not None else plan[i].duplicate_of
                values.append(rows.program_values(self.run_id, proposals[i], sample_ids[i], dup,
                                                  now))
            for i, row, pid in zip(wave, values, rows.insert_rows(conn, ProgramRow, values),
                                   strict=True):
                programs[i] = ProgramRow(id=pid, **row)
        return programs

    def add_side_call(self, completion: Completion, cost: float, stored: list[Any]) -> None:
        """Stores the rows an LLM call made beside the proposals wrote (the scratchpad's) and adds
        its tokens and cost to the run, in one transaction; counted in memory once committed."""
        with self.db.session() as s:
            s.add_all(stored)
            s.execute(update(RunRow).where(RunRow.id == self.run_id)
                      .values(**rows.token_values([completion], cost)))
        self.counters.count_tokens([completion], cost)

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
        program = rows.result_values(prog, bool(kept))
        evaluation = None if evaluation_written else rows.evaluation_values(
            evaluation_id, prog.status, result, self.executor, now)
        if self.folds:
            best_values = _best_values(prog) if best else {}
            statement = folded.result_statement(evaluation is not None, best,
                                                "initial_score" in best_values)
            with self.db.autocommit() as conn:
                conn.execute(statement, {
                    **rows.prefixed("p_", program), **rows.prefixed("e_", evaluation or {}),
                    "l_ids": evicted, "r_key": self.run_id, "r_failed": 0 if result.ok else 1,
                    **rows.prefixed("r_", best_values)})
        else:
            self._write_result(prog, result, program, evaluation, evicted, best)
        self.counters.count_result(result.ok)
        if not evaluation_written:  # a Celery worker counted the evaluations it closed
            metrics.evaluation(self.queue or LOCAL_QUEUE, result.status, result.error_kind,
                               result.duration_s, result.layers)
        if best:
            self.note_best(prog)

    def _write_result(self, prog: ProgramRow, result: EvalResult, program: dict[str, Any],
                      evaluation: dict[str, Any] | None, evicted: list[int], best: bool) -> None:
        """Writes a result in one transaction of three to five statements (SQLite)."""
        with self.db.transaction() as conn:
            conn.execute(rows.PROGRAM_RESULT, rows.prefixed("v_", program))
            if evaluation is not None:
                conn.execute(rows.EVALUATION_RESULT, rows.prefixed("v_", evaluation))
            if best:
                conn.execute(update(RunRow).where(RunRow.id == self.run_id).values(
                    evaluations=RunRow.evaluations + 1,
                    failed=RunRow.failed + (0 if result.ok else 1), **_best_values(prog)))
            else:
                conn.execute(rows.COUNT_RESULT, {"v_key": self.run_id,
                                                 "v_failed": 0 if result.ok else 1})
            if evicted:
                conn.execute(rows.LEAVE_ARCHIVE, {"v_ids": evicted})

    def archive_changed(self, kept: list[int], evicted: list[int], best: ProgramRow | None) -> None:
        """Records which programs are in the archive now, and a new best program."""
        with self.db.transaction() as conn:
            if kept:
                conn.execute(update(ProgramRow).where(ProgramRow.id.in_(kept)).values(in_archive=True))
            if evicted:
                conn.execute(update(ProgramRow).where(ProgramRow.id.in_(evicted))
                          .values(in_archive=False))
            if best is not None:
                conn.execute(update(RunRow).where(RunRow.id == self.run_id)
                          .values(**_best_values(best)))
        if best is not None:
            self.note_best(best)

    def add_migrants(self, copies: list[tuple[ProgramRow, int]], iteration: int,
                     kind: ProgramKind = ProgramKind.MIGRANT) -> list[ProgramRow]:
        """Copies scored programs to other islands, (source, island) each, in one statement (no
        new evaluation: same code, same score); kind "reseed" marks the program an island reset
        starts the island from. Returns the new rows."""
        now = utcnow()
        values = [rows.copy_values(self.run_id, src, island, iteration, kind, now)
                  for src, island in copies]
        if not values:
            return []
        with self.db.transaction() as conn:
            ids = rows.insert_rows(conn, ProgramRow, values)
        return [ProgramRow(id=pid, **row) for pid, row in zip(ids, values, strict=True)]

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


def _best_values(prog: ProgramRow) -> dict[str, Any]:
    values = {"best_score": prog.score, "best_program_id": prog.id,
              "last_improvement_iteration": prog.iteration}
    if prog.kind == ProgramKind.INITIAL:
        values["initial_score"] = prog.score
    return values


def _finite(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in metrics.items()
            if not isinstance(v, float) or math.isfinite(v)}
