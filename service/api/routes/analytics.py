"""Run analytics: best-score timeline (overall and per island), MAP-Elites occupancy, LLM usage,
failure reasons."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path
from sqlalchemy import func, select

from service.api.deps import Reader, SessionDep, run_for
from service.config import RunConfig
from service.db.models import EvaluationRow, LLMSampleRow, ProblemRow, ProgramRow
from service.db.queries import reported_errors
from service.db.status import ProgramStatus
from service.evolution.archive import feature_cell
from service.problems.direction import Direction

router = APIRouter(prefix="/runs/{run_id}", tags=["analytics"])
IdPath = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/timeline")
def timeline(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns the points where the best score improved, overall and per island."""
    run = run_for(s, principal, run_id)
    sign = Direction(s.get(ProblemRow, run.problem_id).direction).sign
    p = ProgramRow
    rows = s.execute(select(p.id, p.iteration, p.island, p.score, p.evaluated_at)
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


@router.get("/map-elites")
def map_elites(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns the MAP-Elites grid per island: which cells hold an archived program, and its score."""
    run = run_for(s, principal, run_id)
    search = RunConfig.model_validate(run.config).search
    p = ProgramRow
    rows = s.execute(select(p.id, p.island, p.score, p.features)
                     .where(p.run_id == run_id, p.in_archive.is_(True), p.status == ProgramStatus.OK))
    grid: dict[int, dict[tuple, dict[str, Any]]] = {}
    for pid, island, score, features in rows:
        cell = tuple(feature_cell(features or {}, search))
        best = grid.setdefault(island, {}).get(cell)
        if best is None or (score is not None and score > (best["score"] or float("-inf"))):
            grid[island][cell] = {"cell": list(cell), "program_id": pid, "score": score}
    cells = search.feature_bins ** len(search.feature_dimensions)
    return {"run_id": run_id, "dimensions": search.feature_dimensions,
            "bins": search.feature_bins, "cells_per_island": cells,
            "islands": [{"island": i, "occupied": len(grid.get(i, {})),
                         "occupancy": len(grid.get(i, {})) / cells,
                         "cells": sorted(grid.get(i, {}).values(), key=lambda c: c["cell"])}
                        for i in range(search.num_islands)]}


@router.get("/llm-usage")
def llm_usage(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns LLM calls, tokens and latency per model/adapter, and what became of completions."""
    run = run_for(s, principal, run_id)
    q = LLMSampleRow
    groups = s.execute(select(q.model, q.adapter, func.count(), func.sum(q.prompt_tokens),
                              func.sum(q.completion_tokens), func.avg(q.latency_s))
                       .where(q.run_id == run_id).group_by(q.model, q.adapter))
    outcomes = s.execute(select(q.outcome, func.count()).where(q.run_id == run_id)
                         .group_by(q.outcome))
    return {"run_id": run_id, "llm_calls": run.llm_calls, "prompt_tokens": run.prompt_tokens,
            "completion_tokens": run.completion_tokens,
            "models": [{"model": m, "adapter": a, "completions": n, "prompt_tokens": pt or 0,
                        "completion_tokens": ct or 0, "mean_latency_s": lat or 0.0}
                       for m, a, n, pt, ct, lat in groups],
            "outcomes": {o: n for o, n in outcomes}}


@router.get("/failures")
def failures(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns failed programs per failure kind with an example reason, evaluation outcomes, and
    the scored programs whose evaluator reported an error (OpenEvolve's `error` metric)."""
    run_for(s, principal, run_id)
    p, e = ProgramRow, EvaluationRow
    kinds = s.execute(select(p.failure_kind, func.count(), func.min(p.failure_reason))
                      .where(p.run_id == run_id, p.status == ProgramStatus.FAILED).group_by(p.failure_kind))
    evals = s.execute(select(e.status, func.count()).where(e.run_id == run_id).group_by(e.status))
    reported, example = reported_errors(s, run_id)
    return {"run_id": run_id,
            "kinds": sorted(({"kind": k or "unknown", "count": n, "example": ex}
                             for k, n, ex in kinds), key=lambda d: -d["count"]),
            "evaluations": {st: n for st, n in evals},
            "reported_errors": {"count": reported, "example": example}}
