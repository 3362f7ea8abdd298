"""Reads and writes of runs, programs, samples and evaluations; every function takes a Session."""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterator
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from evaluators import tree
from service.db.models import EvaluationRow, LLMSampleRow, ProblemRow, ProgramRow, RunRow, utcnow
from service.db.status import (
    UNFINISHED,
    EvaluationStatus,
    ProgramKind,
    ProgramStatus,
    RunStatus,
    sources,
)
from service.problems.direction import Direction
from service.problems.load import Problem

LEASE_SECONDS = 30.0


def controller_id() -> str:
    """Returns an id for this process as a lease owner: host:pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def add_problem(s: Session, problem: Problem) -> ProblemRow:
    """Returns a new problem row holding the folder's path and a snapshot of its files (its
    program folders included)."""
    files = {p.name: p.read_text() for p in sorted(problem.path.iterdir())
             if p.is_file() and p.suffix in {".py", ".toml", ".yaml", ".md", ".txt"}
             and p.stat().st_size < 1_000_000}
    files.update(seed_files(problem))
    row = ProblemRow(name=problem.name, path=str(problem.path), description=problem.description,
                     score_metric=problem.score_metric, direction=problem.direction,
                     best_known=problem.best_known, files=files)
    s.add(row)
    s.flush()
    return row


def seed_files(problem: Problem) -> dict[str, str]:
    """Returns the starting programs that live below the problem folder's top level (a folder
    initial_program/, initial_programs/...) by relative path: a re-created folder loads again."""
    files: dict[str, str] = {}
    for seed in problem.starts:
        if seed.path is None or problem.path not in seed.path.parents:
            continue
        rel = seed.path.relative_to(problem.path).as_posix()
        if seed.path.is_dir():
            files.update({f"{rel}/{name}": text for name, text in tree.split(seed.code).items()})
        elif "/" in rel:
            files[rel] = seed.code
    return files


def add_run(s: Session, problem_id: int, config: dict[str, Any], seed: int) -> RunRow:
    """Returns a new run row in status 'created'."""
    row = RunRow(problem_id=problem_id, config=config, seed=seed, status=RunStatus.CREATED)
    s.add(row)
    s.flush()
    return row


def acquire_lease(s: Session, run_id: int, owner: str) -> bool:
    """Takes the run's lease for owner if free, expired, ours, or held by a dead local process."""
    run = s.get(RunRow, run_id)
    if run is None:
        return False
    now = utcnow()
    holder = run.lease_owner
    if holder and holder != owner and not _lease_expired(run.lease_expires_at, now) \
            and _owner_alive(holder):
        return False
    result = s.execute(
        update(RunRow).where(RunRow.id == run_id, or_(RunRow.lease_owner.is_(None),
                                                      RunRow.lease_owner == holder))
        .values(lease_owner=owner, lease_expires_at=now + timedelta(seconds=LEASE_SECONDS)))
    return result.rowcount == 1


def renew_lease(s: Session, run_id: int, owner: str) -> bool:
    """Extends our lease; returns False when another controller owns the run now."""
    result = s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.lease_owner == owner)
                       .values(lease_expires_at=utcnow() + timedelta(seconds=LEASE_SECONDS)))
    return result.rowcount == 1


def release_lease(s: Session, run_id: int, owner: str) -> None:
    """Gives the lease up."""
    s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.lease_owner == owner)
              .values(lease_owner=None, lease_expires_at=None))


def _lease_expired(expires: datetime | None, now: datetime) -> bool:
    if expires is None:
        return True
    if expires.tzinfo is None:
        expires = expires.replace(tzinfo=now.tzinfo)
    return expires < now


def _owner_alive(owner: str) -> bool:
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return True
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def hash_index(s: Session, run_id: int) -> dict[str, int]:
    """Returns code_hash -> first program id for every non-duplicate program of a run."""
    rows = s.execute(select(ProgramRow.code_hash, ProgramRow.id)
                     .where(ProgramRow.run_id == run_id, ProgramRow.kind != ProgramKind.MIGRANT,
                            ProgramRow.status != ProgramStatus.DUPLICATE).order_by(ProgramRow.id))
    index: dict[str, int] = {}
    for code_hash, pid in rows:
        index.setdefault(code_hash, pid)
    return index


def scored_programs(s: Session, run_id: int, validity: str) -> Iterator[Any]:
    """Yields the run's scored programs in the order the archive took them in (when their result
    was applied, then id: a child scored after an island reset joins the reset island, though its
    row is older than the reset's), with the columns the archive replay needs: of the metrics,
    only the one named validity (as "validity", None when absent), read in SQL."""
    p = ProgramRow
    stmt = (select(p.id, p.island, p.score, p.code_hash, p.features, p.generation, p.iteration,
                   p.kind, p.metrics[validity].label("validity"))
            .where(p.run_id == run_id, p.status == ProgramStatus.OK)
            .order_by(p.evaluated_at.nulls_first(), p.id).execution_options(yield_per=5000))
    yield from s.execute(stmt)


def unfinished_programs(s: Session, run_id: int) -> list[ProgramRow]:
    """Returns programs that were stored but whose evaluation never finished."""
    return list(s.scalars(select(ProgramRow).where(
        ProgramRow.run_id == run_id, ProgramRow.status.in_(UNFINISHED))
        .order_by(ProgramRow.id)))


def open_evaluation(s: Session, program: ProgramRow, executor: str,
                    new: bool = False, queue: str | None = None) -> EvaluationRow:
    """Returns a new queued evaluation row (on queue: Celery's; None: the local pool); earlier
    unfinished attempts are marked lost."""
    attempt = 1
    if not new:
        s.execute(update(EvaluationRow).where(EvaluationRow.program_id == program.id,
                                              EvaluationRow.status.in_((EvaluationStatus.QUEUED,
                                                                      EvaluationStatus.RUNNING)))
                  .values(status=EvaluationStatus.LOST,
                          error="controller stopped before the result arrived"))
        attempt += s.scalar(select(func.count()).select_from(EvaluationRow)
                            .where(EvaluationRow.program_id == program.id)) or 0
    row = EvaluationRow(program_id=program.id, run_id=program.run_id, attempt=attempt,
                        executor=executor, status="queued", queue=queue)
    s.add(row)
    s.flush()
    return row


def move_run(s: Session, run_id: int, status: RunStatus, **values: Any) -> bool:
    """Puts the run in status (with values) when its current status may move there (db/status.py);
    returns False, changing nothing, when it may not."""
    done = s.execute(update(RunRow).where(RunRow.id == run_id,
                                          RunRow.status.in_((status, *sources(status))))
                     .values(status=status, **values))
    return done.rowcount == 1


def best_first(column: Any, direction: str) -> Any:
    """Returns the ORDER BY term that puts the best scores of column first."""
    return column.desc() if Direction(direction) is Direction.MAXIMIZE else column.asc()


def best_program(s: Session, run_id: int, direction: str) -> ProgramRow | None:
    """Returns the run's best scored program."""
    return s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id,
                                              ProgramRow.status == ProgramStatus.OK)
                     .order_by(best_first(ProgramRow.score, direction), ProgramRow.id)
                     .limit(1)).first()


def reported_errors(s: Session, run_id: int) -> tuple[int, str | None]:
    """Returns how many of the run's scored programs carry an error their evaluator reported,
    and the latest such error."""
    p = ProgramRow
    where = (p.run_id == run_id, p.status == ProgramStatus.OK, p.failure_reason.is_not(None))
    count = s.scalar(select(func.count()).select_from(p).where(*where)) or 0
    latest = s.scalar(select(p.failure_reason).where(*where).order_by(p.id.desc()).limit(1))
    return count, latest


def scored_metrics(s: Session, run_id: int) -> Iterator[dict[str, Any]]:
    """Yields the metrics of the run's scored children (initial programs not included)."""
    p = ProgramRow
    yield from s.scalars(select(p.metrics).where(
        p.run_id == run_id, p.status == ProgramStatus.OK, p.kind != ProgramKind.INITIAL)
        .execution_options(yield_per=5000))


def starting_programs(s: Session, run_id: int) -> list[tuple[int, int, float | None, str | None]]:
    """Returns (id, island, score, failure kind) of the run's starting programs, in order."""
    p = ProgramRow
    rows = s.execute(select(p.id, p.island, p.score, p.failure_kind).where(
        p.run_id == run_id, p.kind == ProgramKind.INITIAL).order_by(p.id))
    return [(i, island, score, kind) for i, island, score, kind in rows]


def list_runs(s: Session, limit: int = 50) -> list[tuple[RunRow, ProblemRow]]:
    """Returns the latest runs with their problems."""
    rows = s.execute(select(RunRow, ProblemRow).join(ProblemRow, ProblemRow.id == RunRow.problem_id)
                     .order_by(RunRow.id.desc()).limit(limit))
    return [(r, p) for r, p in rows]


def export_rows(s: Session, run_id: int) -> Iterator[dict[str, Any]]:
    """Yields one JSON-ready dict per program of a run with the prompt and completion behind it."""
    stmt = (select(ProgramRow, LLMSampleRow)
            .outerjoin(LLMSampleRow, LLMSampleRow.id == ProgramRow.sample_id)
            .where(ProgramRow.run_id == run_id).order_by(ProgramRow.id)
            .execution_options(yield_per=1000))
    for prog, sample in s.execute(stmt):
        yield {
            "id": prog.id, "run_id": prog.run_id, "parent_id": prog.parent_id, "kind": prog.kind,
            "island": prog.island, "generation": prog.generation, "iteration": prog.iteration,
            "status": prog.status, "score": prog.score, "metrics": prog.metrics,
            "features": prog.features, "failure_kind": prog.failure_kind,
            "failure_reason": prog.failure_reason, "duplicate_of": prog.duplicate_of,
            "inspiration_ids": prog.inspiration_ids, "artifacts": prog.artifacts, "code": prog.code,
            "model": prog.model, "adapter": prog.adapter,
            "prompt": sample.prompt if sample else None,
            "completion": sample.completion if sample else None,
            "tokens": (sample.prompt_tokens + sample.completion_tokens) if sample else None,
            "created_at": prog.created_at.isoformat() if prog.created_at else None,
        }


def dumps(row: dict[str, Any]) -> str:
    """Returns one JSONL line."""
    return json.dumps(row, default=str, allow_nan=False)
