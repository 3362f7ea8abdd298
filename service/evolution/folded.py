"""PostgreSQL's one-statement forms of the ledger's two per-iteration writes: an LLM call of one
proposal (run counters, sample, program, queued evaluation) and an evaluation's result (program,
evaluation, run counters and best, archive evictions).

Each is one statement of data-modifying CTEs, run on an autocommit connection: one round trip that
is its own transaction, instead of BEGIN, three to five statements and COMMIT (each a round trip).
A statement is atomic, so the durability rules hold as before: the call's rows exist before its
evaluation is sent, and a result is all written or not at all. SQLite has no data-modifying CTEs;
the ledger keeps its transactions there (and on PostgreSQL for calls of several proposals).

Statements are built once per shape (which rows a write has) with bound parameters, like rows.py's.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from sqlalchemy import (
    CTE,
    Insert,
    Integer,
    Select,
    Table,
    Update,
    bindparam,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import ARRAY

from service.db.binds import bound
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow
from service.evolution import rows

_RUNS: Table = RunRow.__table__  # type: ignore[assignment]
_PROGRAMS: Table = ProgramRow.__table__  # type: ignore[assignment]
_SAMPLES: Table = LLMSampleRow.__table__  # type: ignore[assignment]
_EVALUATIONS: Table = EvaluationRow.__table__  # type: ignore[assignment]
BEST_COLUMNS = ("best_score", "best_program_id", "last_improvement_iteration")


def _inserting(table: Table, prefix: str, columns: tuple[str, ...], **exprs: Any) -> Insert:
    return insert(table).values(**bound(table, columns, prefix), **exprs)


@cache
def call_statement(sample_columns: tuple[str, ...], program_columns: tuple[str, ...] | None,
                   evaluation_columns: tuple[str, ...] | None) -> Select:
    """Returns the statement of an LLM call of one proposal: it counts the call on the run row
    (c_ parameters, as rows.COUNT_CALL's), inserts the sample (s_), the program (p_, unless the
    edit was rejected; its sample_id from the sample) and the queued evaluation (e_, for a new
    child; its program_id from the program), and selects the new ids."""
    count = update(_RUNS).where(_RUNS.c.id == bindparam("c_key")).values(
        llm_calls=_RUNS.c.llm_calls + 1, **rows.plus(_RUNS, *rows.CALL_TOTALS, prefix="c_"),
    ).returning(_RUNS.c.id).cte("counted")
    sample = _inserting(_SAMPLES, "s_", sample_columns).returning(_SAMPLES.c.id).cte("sample")
    ids: list[Any] = [sample.c.id]
    joined: Any = sample
    if program_columns is not None:
        program = _inserting(_PROGRAMS, "p_", program_columns,
                             sample_id=select(sample.c.id).scalar_subquery()
                             ).returning(_PROGRAMS.c.id).cte("program")
        ids.append(program.c.id)
        joined = joined.join(program, true())
        if evaluation_columns is not None:
            evaluation: CTE = _inserting(
                _EVALUATIONS, "e_", evaluation_columns,
                program_id=select(program.c.id).scalar_subquery(),
            ).returning(_EVALUATIONS.c.id).cte("evaluation")
            ids.append(evaluation.c.id)
            joined = joined.join(evaluation, true())
    return select(*ids).select_from(joined).add_cte(count)


@cache
def result_statement(evaluation: bool, best: bool, initial: bool) -> Update:
    """Returns the statement of a result: the program's result columns (p_ parameters, as
    rows.PROGRAM_RESULT's), the evaluation row's (e_, when the controller writes it), the
    archive's evictions (l_ids; never the program itself), and the run's counters (r_key,
    r_failed) and, for a new best, its best columns (r_best_score, ...; r_initial_score for an
    initial program)."""
    program = update(_PROGRAMS).where(_PROGRAMS.c.id == bindparam("p_key")).values(
        **bound(_PROGRAMS, rows.RESULT_COLUMNS, "p_")).returning(_PROGRAMS.c.id).cte("program")
    evicted = update(_PROGRAMS).where(
        _PROGRAMS.c.id == bindparam("l_ids", type_=ARRAY(Integer)).any_(),
        _PROGRAMS.c.id != bindparam("p_key"),
    ).values(in_archive=False).returning(_PROGRAMS.c.id).cte("evicted")
    ctes = [program, evicted]
    if evaluation:
        ctes.append(update(_EVALUATIONS).where(_EVALUATIONS.c.id == bindparam("e_key")).values(
            **bound(_EVALUATIONS, rows.EVALUATION_COLUMNS, "e_")
        ).returning(_EVALUATIONS.c.id).cte("evaluation"))
    best_columns = (*BEST_COLUMNS, "initial_score") if initial else BEST_COLUMNS if best else ()
    return update(_RUNS).where(_RUNS.c.id == bindparam("r_key")).values(
        evaluations=_RUNS.c.evaluations + 1,
        failed=_RUNS.c.failed + bindparam("r_failed", type_=Integer),
        **bound(_RUNS, best_columns, "r_")).add_cte(*ctes)
