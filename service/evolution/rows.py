"""The rows a ledger write is made of, and its statements, built once: what a proposal becomes
(a sample, maybe a program), their column values, and the updates of a result and the totals.

Pure (no I/O) but for `insert`, which runs one multi-row INSERT on the connection it is given.
The statements are module constants with bound parameters: SQLAlchemy builds and keys each one
once instead of at every write (that was a fifth of the controller's CPU per iteration).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, Update, bindparam, insert, update

from evaluators import tree
from evaluators.jobs import EvalResult
from service.db.binds import bound
from service.db.models import EvaluationRow, ProgramRow, RunRow
from service.db.status import NO_PROGRAM, ProgramKind, ProgramStatus, SampleOutcome
from service.evolution.archive import Member
from service.llm.base import Completion, Message


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


@dataclass(frozen=True)
class Fate:
    """What a proposal becomes: its outcome, and what it duplicates (a stored program, or the
    index of a child of the same call, whose id is known only once it is inserted)."""

    outcome: SampleOutcome
    duplicate_of: int | None = None
    twin: int | None = None


def fates(proposals: list[Proposal], known: dict[str, int]) -> list[Fate]:
    """Returns each proposal's fate: rejected, too similar, a child, unchanged (the parent again),
    or a duplicate of a stored program (known: code hash -> id) or of an earlier child of the
    call."""
    first: dict[str | None, int] = {}  # code hash -> index of the call's child that has it
    out = []
    for i, p in enumerate(proposals):
        if p.code is None or p.similar_to is not None:
            out.append(Fate(SampleOutcome.REJECTED if p.code is None
                            else SampleOutcome.TOO_SIMILAR))
        elif p.unchanged:
            out.append(Fate(SampleOutcome.UNCHANGED, duplicate_of=p.parent.id))
        elif (dup := known.get(p.code_hash or "")) is not None:
            out.append(Fate(SampleOutcome.DUPLICATE, duplicate_of=dup))
        elif p.code_hash in first:
            out.append(Fate(SampleOutcome.DUPLICATE, twin=first[p.code_hash]))
        else:
            first[p.code_hash] = i
            out.append(Fate(SampleOutcome.CHILD))
    return out


def sample_values(run_id: int, p: Proposal, fate: Fate, group_id: str,
                  now: datetime) -> dict[str, Any]:
    """Returns the columns of a proposal's llm_samples row."""
    c = p.completion
    nearest, similarity = p.similar_to if fate.outcome == SampleOutcome.TOO_SIMILAR and \
        p.similar_to is not None else (None, None)
    return {"run_id": run_id, "parent_id": p.parent.id, "iteration": p.iteration,
            "group_id": group_id, "prompt": [{"role": m.role, "content": m.content}
                                             for m in p.prompt],
            "completion": c.text, "finish_reason": c.finish_reason, "model": c.model,
            "adapter": c.adapter, "prompt_tokens": c.prompt_tokens,
            "completion_tokens": c.completion_tokens, "latency_s": c.latency_s, "kind": p.kind,
            "island": p.island, "temperature": c.extra.get("temperature"),
            "cost": c.extra.get("cost"), "outcome": fate.outcome,
            "rejection": p.rejection if fate.outcome in NO_PROGRAM else None,
            "nearest_program_id": nearest, "similarity": similarity, "repair": p.repair,
            "created_at": now}


def program_values(run_id: int, p: Proposal, sample_id: int | None, dup: int | None,
                   now: datetime) -> dict[str, Any]:
    """Returns the columns of a proposal's program row (pending, or a duplicate of dup); no
    sample_id when it is None (the statement that inserts the sample gives it)."""
    c = p.completion
    values = {"run_id": run_id, "parent_id": p.parent.id, "kind": ProgramKind.MUTATION,
              "inspiration_ids": [m.id for m in p.inspirations], "island": p.island,
              "generation": p.parent_generation + 1, "iteration": p.iteration,
              "files": tree.split(p.code), "code_hash": p.code_hash or "",
              "status": ProgramStatus.PENDING if dup is None else ProgramStatus.DUPLICATE,
              "duplicate_of": dup, "metrics": {}, "score": None, "features": {}, "artifacts": {},
              "failure_kind": None, "failure_reason": None, "model": c.model,
              "adapter": c.adapter, "in_archive": False, "created_at": now, "evaluated_at": None}
    return values if sample_id is None else {"sample_id": sample_id, **values}


def copy_values(run_id: int, src: ProgramRow, island: int, iteration: int, kind: ProgramKind,
                now: datetime) -> dict[str, Any]:
    """Returns the columns of a copy of a scored program on another island (a migrant or an
    island's reseed: same code and score, no new evaluation)."""
    return {"run_id": run_id, "parent_id": src.id, "sample_id": None, "kind": kind,
            "inspiration_ids": [], "island": island, "generation": src.generation,
            "iteration": iteration, "files": src.files, "code_hash": src.code_hash,
            "status": ProgramStatus.OK, "duplicate_of": None, "metrics": src.metrics,
            "score": src.score, "features": src.features, "artifacts": {},
            "failure_kind": None, "failure_reason": None, "model": src.model,
            "adapter": src.adapter, "in_archive": False, "created_at": now, "evaluated_at": now}


def insert_rows(conn: Connection, model: type, values: list[dict[str, Any]]) -> list[int]:
    """Inserts rows in one statement (a multi-row INSERT; on SQLite, which does not promise the
    order of RETURNING, one per row); returns their ids in the rows' order."""
    if not values:
        return []
    table = model.__table__  # type: ignore[attr-defined]
    stmt = insert(table).returning(table.c.id, sort_by_parameter_order=True)
    return list(conn.execute(stmt, values).scalars())


def token_values(completions: list[Completion], cost: float) -> dict[str, Any]:
    """Returns the run-row increments for the tokens and cost of completions."""
    return {"prompt_tokens": RunRow.prompt_tokens + sum(c.prompt_tokens for c in completions),
            "completion_tokens": RunRow.completion_tokens + sum(c.completion_tokens
                                                                for c in completions),
            "cost": RunRow.cost + cost}


def token_params(completions: list[Completion], cost: float, prefix: str = "v_"
                 ) -> dict[str, Any]:
    """Returns the parameters of COUNT_CALL's tokens and cost (folded's: prefix "c_")."""
    return {f"{prefix}prompt_tokens": sum(c.prompt_tokens for c in completions),
            f"{prefix}completion_tokens": sum(c.completion_tokens for c in completions),
            f"{prefix}cost": cost}


def _set(table: Table, columns: tuple[str, ...], **exprs: Any) -> Update:
    """Returns UPDATE table SET column = :v_column ... (and exprs) WHERE id = :v_key."""
    values = bound(table, columns)
    return update(table).where(table.c.id == bindparam("v_key")).values(**values, **exprs)


def plus(table: Table, *names: str, prefix: str = "v_") -> dict[str, Any]:
    """Returns SET column = column + :{prefix}column for each name."""
    return {name: table.c[name] + bindparam(f"{prefix}{name}", type_=table.c[name].type)
            for name in names}


_RUNS, _PROGRAMS = RunRow.__table__, ProgramRow.__table__
RESULT_COLUMNS = ("status", "metrics", "score", "artifacts", "failure_kind", "failure_reason",
                  "features", "evaluated_at", "in_archive")
PROGRAM_RESULT = _set(_PROGRAMS, RESULT_COLUMNS)
EVALUATION_COLUMNS = ("status", "stage", "error_kind", "error", "duration_s", "finished_at",
                      "started_at", "worker", "layers")
EVALUATION_RESULT = _set(EvaluationRow.__table__, EVALUATION_COLUMNS)
CALL_TOTALS = ("iterations", "prompt_tokens", "completion_tokens", "cost")
COUNT_CALL = _set(_RUNS, (), llm_calls=_RUNS.c.llm_calls + 1, **plus(_RUNS, *CALL_TOTALS))
COUNT_RESULT = _set(_RUNS, (), evaluations=_RUNS.c.evaluations + 1, **plus(_RUNS, "failed"))
LEAVE_ARCHIVE = update(_PROGRAMS).where(
    _PROGRAMS.c.id.in_(bindparam("v_ids", expanding=True))).values(in_archive=False)


def result_values(prog: ProgramRow, in_archive: bool) -> dict[str, Any]:
    """Returns the result columns (RESULT_COLUMNS, and key: the id) of a program that holds its
    result."""
    return {"key": prog.id, "in_archive": in_archive,
            **{name: getattr(prog, name) for name in RESULT_COLUMNS[:-1]}}


def evaluation_values(evaluation_id: int, status: str, result: EvalResult, worker: str,
                      now: datetime) -> dict[str, Any]:
    """Returns the columns (EVALUATION_COLUMNS, and key: the id) of an evaluation's outcome."""
    return {"key": evaluation_id, "status": status, "stage": result.stage,
            "error_kind": result.error_kind, "error": result.error,
            "duration_s": result.duration_s, "finished_at": now,
            "started_at": now - timedelta(seconds=result.duration_s), "worker": worker,
            "layers": result.layers or None}


def prefixed(prefix: str, values: dict[str, Any]) -> dict[str, Any]:
    """Returns values with each key given the prefix (the names of a statement's parameters)."""
    return {f"{prefix}{k}": v for k, v in values.items()}
