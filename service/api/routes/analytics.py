"""Run analytics: best-score timeline (overall and per island), every evaluated program's score,
MAP-Elites occupancy, LLM usage, failure reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from service.api.deps import Reader, SessionDep, run_for
from service.api.errors import responses
from service.config import RunConfig, SearchConfig
from service.db.models import EvaluationRow, LLMSampleRow, ProblemRow, ProgramRow, RunRow
from service.db.queries import reported_errors
from service.db.status import UNFINISHED, ProgramKind, ProgramStatus
from service.evolution.archive import feature_cell
from service.problems.direction import Direction

router = APIRouter(prefix="/runs/{run_id}", tags=["analytics"], responses=responses(401, 404, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]
EVALUATED = (ProgramStatus.OK, ProgramStatus.FAILED)
COPIES = (ProgramKind.MIGRANT, ProgramKind.RESEED)  # rows that re-use a score, never evaluated


def island_count(run: RunRow) -> int:
    """Returns how many islands the run's archive has (its config's num_islands)."""
    return RunConfig.model_validate(run.config).search.num_islands


def island_of(count: int) -> ColumnElement[int]:
    """Returns a program's island as the archive files it: the stored island modulo the island
    count (a run resumed with fewer islands keeps rows numbered for the old count)."""
    return ProgramRow.island % count


@router.get("/timeline")
def timeline(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns the points where the best score improved, overall and per island."""
    run = run_for(s, principal, run_id)
    sign = Direction(s.get(ProblemRow, run.problem_id).direction).sign
    p = ProgramRow
    rows = s.execute(select(p.id, p.iteration, island_of(island_count(run)), p.score,
                            p.evaluated_at)
                     .where(p.run_id == run_id, p.status == ProgramStatus.OK, p.score.is_not(None))
                     .order_by(p.id).execution_options(yield_per=5000))
    overall: list[dict[str, Any]] = []
    islands: dict[int, list[dict[str, Any]]] = {}
    for pid, iteration, island, score, at in rows:
        point = {"program_id": pid, "iteration": iteration, "island": island, "score": score,
                 "at": at.isoformat() if at else None}
        if not overall or sign * score > sign * overall[-1]["score"]:
            overall.append(point)
        own = islands.setdefault(island, [])
        if not own or sign * score > sign * own[-1]["score"]:
            own.append(point)
    return {"run_id": run_id, "overall": overall,
            "islands": {str(k): v for k, v in sorted(islands.items())}}


@router.get("/scores")
def scores(run_id: IdPath, s: SessionDep, principal: Reader,
           after_id: Annotated[int, Query(ge=0, le=2**62, description="Programs after this id "
                                          "(keyset paging: pass the previous page's next_after).")]
           = 0,
           limit: Annotated[int, Query(ge=1, le=50_000)] = 20_000) -> dict[str, Any]:
    """Returns every evaluated program of the run (scored or failed; migrant copies left out) in
    id order, as parallel columns, a page at a time; failed programs have score null.
    first_unfinished_id is the smallest id still being evaluated: a client that keeps what it
    read refetches from just below it, since such a program joins the list when it finishes."""
    run = run_for(s, principal, run_id)
    p = ProgramRow
    where = [p.run_id == run_id, p.status.in_(EVALUATED), p.kind.not_in(COPIES)]
    rows = s.execute(select(p.id, p.iteration, island_of(island_count(run)), p.score, p.status)
                     .where(*where, p.id > after_id).order_by(p.id).limit(limit)).all()
    total = s.scalar(select(func.count()).select_from(p).where(*where))
    pending = s.scalar(select(func.min(p.id)).where(p.run_id == run_id, p.status.in_(UNFINISHED)))
    return {"run_id": run_id, "total": total, "first_unfinished_id": pending,
            "ids": [r[0] for r in rows], "iterations": [r[1] for r in rows],
            "islands": [r[2] for r in rows],
            "scores": [r[3] if r[4] == ProgramStatus.OK else None for r in rows],
            "next_after": rows[-1][0] if len(rows) == limit else None}


@router.get("/map-elites")
def map_elites(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns the MAP-Elites grid of every island of the run (the same islands /ui/runs/ID/islands
    lists): which cells hold an archived program, and the best of them (in the problem's
    direction, lowest id on ties, as the archive keeps it)."""
    run = run_for(s, principal, run_id)
    search = RunConfig.model_validate(run.config).search
    direction = Direction(s.get(ProblemRow, run.problem_id).direction)
    grid = _grid(s, run_id, island_count(run), direction, search)
    cells = search.feature_bins ** len(search.feature_dimensions)
    return {"run_id": run_id, "dimensions": search.feature_dimensions, "direction": direction,
            "bins": search.feature_bins, "cells_per_island": cells,
            "islands": [{"island": i, "occupied": len(grid.get(i, {})),
                         "occupancy": len(grid.get(i, {})) / cells,
                         "cells": sorted(grid.get(i, {}).values(), key=lambda c: c["cell"])}
                        for i in range(island_count(run))]}


def _grid(s: Session, run_id: int, count: int, direction: Direction,
          search: SearchConfig) -> dict[int, dict[tuple, dict[str, Any]]]:
    p = ProgramRow
    rows = s.execute(select(p.id, island_of(count), p.score, p.features)
                     .where(p.run_id == run_id, p.in_archive.is_(True),
                            p.status == ProgramStatus.OK).order_by(p.id))
    grid: dict[int, dict[tuple, dict[str, Any]]] = {}
    for pid, island, score, features in rows:
        cell = tuple(feature_cell(features or {}, search))
        held = grid.setdefault(island, {}).get(cell)
        if held is None or direction.better(score, held["score"]):
            grid[island][cell] = {"cell": list(cell), "program_id": pid, "score": score}
    return grid


@router.get("/llm-usage")
def llm_usage(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns LLM calls, tokens and latency per model/adapter, what became of completions, and
    how many answers took each repair of their form (service/edits/repair.py)."""
    run = run_for(s, principal, run_id)
    q = LLMSampleRow
    groups = s.execute(select(q.model, q.adapter, func.count(), func.sum(q.prompt_tokens),
                              func.sum(q.completion_tokens), func.avg(q.latency_s))
                       .where(q.run_id == run_id).group_by(q.model, q.adapter))
    outcomes = s.execute(select(q.outcome, func.count()).where(q.run_id == run_id)
                         .group_by(q.outcome))
    repairs = s.execute(select(q.repair, func.count()).where(q.run_id == run_id,
                                                             q.repair.is_not(None))
                        .group_by(q.repair))
    return {"run_id": run_id, "llm_calls": run.llm_calls, "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "models": [{"model": m, "adapter": a, "completions": n, "prompt_tokens": pt or 0,
                        "completion_tokens": ct or 0, "mean_latency_s": lat or 0.0}
                       for m, a, n, pt, ct, lat in groups],
            "outcomes": {o: n for o, n in outcomes},
            "repairs": {r: n for r, n in repairs}}


@router.get("/failures")
def failures(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns failed programs per failure kind with an example reason, evaluation outcomes, and
    the scored programs whose evaluator reported an error (OpenEvolve's `error` metric)."""
    run_for(s, principal, run_id)
    p, e = ProgramRow, EvaluationRow
    kinds = s.execute(select(p.failure_kind, func.count(), func.min(p.failure_reason))
                      .where(p.run_id == run_id, p.status == ProgramStatus.FAILED)
                      .group_by(p.failure_kind))
    evals = s.execute(select(e.status, func.count()).where(e.run_id == run_id).group_by(e.status))
    reported, example = reported_errors(s, run_id)
    return {"run_id": run_id,
            "kinds": sorted(({"kind": k or "unknown", "count": n, "example": ex}
                             for k, n, ex in kinds), key=lambda d: -d["count"]),
            "evaluations": {st: n for st, n in evals},
            "reported_errors": {"count": reported, "example": example}}
