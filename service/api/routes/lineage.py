"""Lineage: ancestors up to the initial program, descendants, and a run's whole genealogy."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import literal, select

from service.api.deps import Reader, SessionDep, program_for, run_for
from service.api.errors import responses
from service.api.routes.programs import SUMMARY_COLUMNS
from service.api.schemas import Page, ProgramSummary
from service.db.models import ProgramRow

router = APIRouter(tags=["lineage"], responses=responses(401, 404, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]
MAX_DEPTH = 100_000


@router.get("/programs/{program_id}/ancestors", response_model=list[ProgramSummary])
def ancestors(program_id: IdPath, s: SessionDep, principal: Reader) -> list[ProgramSummary]:
    """Returns the program and its ancestors, nearest first, up to the initial program; evicted
    ones resolve too (programs are never deleted)."""
    prog = program_for(s, principal, program_id)
    p = ProgramRow
    chain = select(p.id, p.parent_id, literal(0).label("depth")).where(p.id == prog.id) \
        .cte("chain", recursive=True)
    chain = chain.union_all(
        select(p.id, p.parent_id, (chain.c.depth + 1).label("depth"))
        .join(chain, p.id == chain.c.parent_id)
        .where(p.run_id == prog.run_id, chain.c.depth < MAX_DEPTH))
    rows = s.execute(select(*SUMMARY_COLUMNS).join(chain, chain.c.id == p.id)
                     .order_by(chain.c.depth)).mappings()
    return [ProgramSummary.model_validate(dict(r)) for r in rows]


@router.get("/programs/{program_id}/descendants", response_model=Page[ProgramSummary])
def descendants(program_id: IdPath, s: SessionDep, principal: Reader,
                depth: Annotated[int, Query(ge=1, le=MAX_DEPTH)] = MAX_DEPTH,
                after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> Page[ProgramSummary]:
    """Returns the program's descendants up to depth generations down, in id order, paged."""
    prog = program_for(s, principal, program_id)
    p = ProgramRow
    tree = select(p.id, literal(0).label("depth")).where(p.id == prog.id) \
        .cte("tree", recursive=True)
    tree = tree.union_all(
        select(p.id, (tree.c.depth + 1).label("depth")).join(tree, p.parent_id == tree.c.id)
        .where(p.run_id == prog.run_id, tree.c.depth < depth))
    rows = list(s.execute(select(*SUMMARY_COLUMNS).join(tree, tree.c.id == p.id)
                          .where(p.id != prog.id, p.id > after_id).order_by(p.id)
                          .limit(limit)).mappings())
    items = [ProgramSummary.model_validate(dict(r)) for r in rows]
    return Page(items=items, limit=limit, next_after=items[-1].id if len(items) == limit else None)


@router.get("/runs/{run_id}/genealogy", response_model=Page[ProgramSummary])
def genealogy(run_id: IdPath, s: SessionDep, principal: Reader,
              after_id: Annotated[int, Query(ge=0, le=2**62)] = 0,
              limit: Annotated[int, Query(ge=1, le=5000)] = 1000) -> Page[ProgramSummary]:
    """Returns every program of a run with its parent link, in id order, keyset-paged."""
    run_for(s, principal, run_id)
    p = ProgramRow
    rows = list(s.execute(select(*SUMMARY_COLUMNS).where(p.run_id == run_id, p.id > after_id)
                          .order_by(p.id).limit(limit)).mappings())
    items = [ProgramSummary.model_validate(dict(r)) for r in rows]
    return Page(items=items, limit=limit, next_after=items[-1].id if len(items) == limit else None)
