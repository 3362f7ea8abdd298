"""What the web UI needs beyond the resource routes: islands, the problem's reference value and
the run's gap to it, best lineages first, adapter versions on the iteration axis, a program's LLM
costs, and a diff between any two programs."""

from __future__ import annotations

import tomllib
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select

from service.api.deps import Reader, SessionDep, program_for, run_for
from service.api.diffs import file_diffs, joined
from service.api.errors import responses
from service.api.routes.analytics import island_count, island_of
from service.api.routes.programs import SUMMARY_COLUMNS
from service.api.schemas import ProgramSummary
from service.db.models import AdapterRow, LLMSampleRow, ProblemRow, ProgramRow
from service.db.queries import best_first
from service.problems.direction import Direction

router = APIRouter(prefix="/ui", tags=["ui"], responses=responses(401, 404, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]


@router.get("/runs/{run_id}/islands")
def islands(run_id: IdPath, s: SessionDep, principal: Reader) -> list[dict[str, Any]]:
    """Returns every island of the run (its config's num_islands, the islands /map-elites draws),
    empty ones included: programs, archived programs, and the best score with its program."""
    run = run_for(s, principal, run_id)
    direction = Direction(s.get(ProblemRow, run.problem_id).direction)
    count = island_count(run)
    p, island = ProgramRow, island_of(count)
    best = func.max(p.score) if direction is Direction.MAXIMIZE else func.min(p.score)
    rows = {i: (n, archived, score) for i, n, archived, score in s.execute(
        select(island, func.count(), func.count().filter(p.in_archive.is_(True)), best)
        .where(p.run_id == run_id).group_by(island))}
    out = []
    for i in range(count):
        n, archived, score = rows.get(i, (0, 0, None))
        pid = None
        if score is not None:
            pid = s.scalar(select(p.id).where(p.run_id == run_id, island == i, p.score == score)
                           .order_by(p.id).limit(1))
        out.append({"island": i, "programs": n, "in_archive": archived, "best_score": score,
                    "best_program_id": pid})
    return out


@router.get("/runs/{run_id}/reference")
def reference(run_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any] | None:
    """Returns the problem's reference value (best_known) with what its problem.toml says of it
    (source, tolerance, verified, check, note), and how the run's best stands against it: gap > 0
    when the run beats it, in the problem's direction; null when the problem has no reference."""
    run = run_for(s, principal, run_id)
    prow = s.get(ProblemRow, run.problem_id)
    if prow.best_known is None:
        return None
    direction = Direction(prow.direction)
    gap = None if run.best_score is None else direction.gain(run.best_score, prow.best_known)
    return {"best_known": prow.best_known, "direction": direction, **_reference_facts(prow),
            "best_score": run.best_score, "gap": gap,
            "relative_gap": abs(gap) / abs(prow.best_known) if gap is not None and
            prow.best_known else None}


def _reference_facts(prow: ProblemRow) -> dict[str, Any]:
    """Returns the best_known_* keys of the problem.toml stored with the problem (load_problem
    checked them when it was submitted); absent keys are null, verified defaults to false."""
    try:
        meta = tomllib.loads((prow.files or {}).get("problem.toml", "")).get("problem", {})
    except tomllib.TOMLDecodeError:
        meta = {}
    keys = ("source", "tolerance", "verified", "check", "note")
    facts = {k: meta.get(f"best_known_{k}") for k in keys}
    facts["verified"] = bool(facts["verified"])
    return facts


@router.get("/runs/{run_id}/top-lineages")
def top_lineages(run_id: IdPath, s: SessionDep, principal: Reader,
                 k: Annotated[int, Query(ge=1, le=5000)] = 20) -> dict[str, Any]:
    """Returns the k best programs (unscored last) with all their ancestors (evicted ones
    included), the path from the initial program to the best, and how many programs the run has
    in all."""
    run = run_for(s, principal, run_id)
    p = ProgramRow
    order = best_first(p.score, s.get(ProblemRow, run.problem_id).direction)
    top = list(s.scalars(select(p.id).where(p.run_id == run_id)
                         .order_by(order.nulls_last(), p.id).limit(k)))
    parents = dict(s.execute(select(p.id, p.parent_id).where(p.run_id == run_id)).all())
    keep: set[int] = set()
    for pid in top:
        while pid is not None and pid not in keep:
            keep.add(pid)
            pid = parents.get(pid)
    path: list[int] = []
    pid = top[0] if top else None
    while pid is not None:
        path.append(pid)
        pid = parents.get(pid)
    rows = s.execute(select(*SUMMARY_COLUMNS).where(p.id.in_(keep)).order_by(p.id)).mappings() \
        if keep else []
    nodes = [ProgramSummary.model_validate(dict(r)).model_dump(mode="json") for r in rows]
    return {"run_id": run_id, "k": k, "total": len(parents), "best_path": path[::-1],
            "nodes": nodes}


@router.get("/runs/{run_id}/adapters")
def adapters(run_id: IdPath, s: SessionDep, principal: Reader) -> list[dict[str, Any]]:
    """Returns the run's published adapter versions with the first iteration whose program came
    from each (null while none has)."""
    run_for(s, principal, run_id)
    p, a = ProgramRow, AdapterRow
    first = dict(s.execute(select(p.adapter, func.min(p.iteration))
                           .where(p.run_id == run_id, p.adapter.is_not(None))
                           .group_by(p.adapter)).all())
    rows = s.scalars(select(a).where(a.run_id == run_id).order_by(a.version))
    return [{"name": r.name, "version": r.version, "steps": r.steps,
             "created_at": r.created_at.isoformat(), "first_iteration": first.get(r.name)}
            for r in rows]


@router.get("/programs/{program_id}/sample")
def sample(program_id: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any] | None:
    """Returns the LLM call behind a program (model, adapter, tokens, latency), or null."""
    prog = program_for(s, principal, program_id)
    row = s.get(LLMSampleRow, prog.sample_id) if prog.sample_id else None
    if row is None:
        return None
    return {"model": row.model, "adapter": row.adapter, "prompt_tokens": row.prompt_tokens,
            "completion_tokens": row.completion_tokens, "latency_s": row.latency_s,
            "finish_reason": row.finish_reason, "outcome": row.outcome,
            "rejection": row.rejection, "repair": row.repair, "reward": row.reward}


@router.get("/programs/{a}/compare/{b}")
def compare(a: IdPath, b: IdPath, s: SessionDep, principal: Reader) -> dict[str, Any]:
    """Returns the unified diff from program a to program b (any runs the token can see), whole
    and per file of either program (unchanged files included)."""
    pa, pb = program_for(s, principal, a), program_for(s, principal, b)
    per_file = file_diffs(pa.files, pb.files, a, b)
    return {"a": a, "b": b, "score_a": pa.score, "score_b": pb.score, "diff": joined(per_file),
            "files": [d.model_dump() for d in per_file]}
