"""Programs of a run: filtered, sorted, paged listings; one program with everything behind it."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from service.api.deps import Reader, SessionDep, program_for, run_for
from service.api.diffs import file_diffs, joined
from service.api.errors import responses
from service.api.schemas import Page, ProgramDetail, ProgramSummary
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow
from service.db.status import ProgramKind, ProgramStatus
from service.evolution.reverify import tier_label

router = APIRouter(tags=["programs"], responses=responses(401, 404, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]
SortKey = Literal["id", "-id", "score", "-score", "generation", "-generation", "iteration",
                  "-iteration"]
SUMMARY_COLUMNS = [getattr(ProgramRow, f) for f in ProgramSummary.model_fields]


@router.get("/runs/{run_id}/programs", response_model=Page[ProgramSummary])
def list_programs(
        run_id: IdPath, s: SessionDep, principal: Reader,
        status: ProgramStatus | None = None,
        island: Annotated[int | None, Query(ge=0, le=10**6)] = None,
        kind: ProgramKind | None = None,
        in_archive: bool | None = None,
        min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
        max_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
        sort: SortKey = "id",
        after_id: Annotated[int | None, Query(ge=0, le=2**62, description="Only programs "
                                              "with a larger id. With sort=id this is keyset "
                                              "paging (pass the previous page's next_after; "
                                              "fast at any depth, unlike offset); with other "
                                              "sorts, a filter.")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 50,
        offset: Annotated[int, Query(ge=0, le=10**9)] = 0,
        count: Annotated[bool, Query(description="Count the matching programs into `total` "
                                     "(false: total is null; saves a scan on large runs when "
                                     "paging with after_id).")] = True) -> Page[ProgramSummary]:
    """Lists a run's programs (without code), filtered, sorted and paged; unscored programs
    come last when sorting by score."""
    run_for(s, principal, run_id)
    p = ProgramRow
    where = [p.run_id == run_id]
    if status is not None:
        where.append(p.status == status)
    if island is not None:
        where.append(p.island == island)
    if kind is not None:
        where.append(p.kind == kind)
    if in_archive is not None:
        where.append(p.in_archive.is_(in_archive))
    if min_score is not None:
        where.append(p.score >= min_score)
    if max_score is not None:
        where.append(p.score <= max_score)
    if after_id is not None:
        where.append(p.id > after_id)
    total = s.scalar(select(func.count()).select_from(p).where(*where)) if count else None
    if sort.lstrip("-") == "score":
        rows = _by_score(s, where, sort.startswith("-"), limit, offset)
    else:
        column = getattr(p, sort.lstrip("-"))
        rows = list(s.execute(select(*SUMMARY_COLUMNS).where(*where)
                              .order_by(column.desc() if sort.startswith("-") else column, p.id)
                              .limit(limit).offset(offset)).mappings())
    items = [ProgramSummary.model_validate(dict(r)) for r in rows]
    return Page(items=items, total=total, limit=limit, offset=offset,
                next_after=items[-1].id if sort == "id" and len(items) == limit else None)


def _by_score(s: Session, where: list[Any], descending: bool, limit: int,
              offset: int) -> list[Any]:
    """Returns a page ordered by score with unscored programs last, in two index-friendly
    queries (scored ones through the (run_id, score) index, then the unscored ones by id)."""
    p = ProgramRow
    scored = where + [p.score.is_not(None)]
    order = p.score.desc() if descending else p.score.asc()
    rows = list(s.execute(select(*SUMMARY_COLUMNS).where(*scored).order_by(order, p.id)
                          .limit(limit).offset(offset)).mappings())
    if len(rows) == limit:
        return rows
    n_scored = s.scalar(select(func.count()).select_from(p).where(*scored)) or 0
    rows += s.execute(select(*SUMMARY_COLUMNS).where(*where, p.score.is_(None)).order_by(p.id)
                      .limit(limit - len(rows)).offset(max(0, offset - n_scored))).mappings()
    return rows


@router.get("/programs/{program_id}", response_model=ProgramDetail)
def get_program(program_id: IdPath, s: SessionDep, principal: Reader) -> ProgramDetail:
    """Returns a program: files, diff to its parent per file, metrics, artifacts, LLM exchange."""
    prog = program_for(s, principal, program_id)
    parent = s.get(ProgramRow, prog.parent_id) if prog.parent_id else None
    sample = s.get(LLMSampleRow, prog.sample_id) if prog.sample_id else None
    per_file = file_diffs(parent.files, prog.files, parent.id, prog.id) if parent else None
    evals = s.scalars(select(EvaluationRow).where(EvaluationRow.program_id == prog.id)
                      .order_by(EvaluationRow.attempt))
    summary = ProgramSummary.model_validate(prog).model_dump()
    return ProgramDetail(
        **summary, code=prog.code, files=dict(sorted(prog.files.items())),
        diff=joined(per_file) if per_file is not None else None, file_diffs=per_file,
        metrics=prog.metrics or {},
        features=prog.features or {}, artifacts=prog.artifacts or {},
        failure_reason=prog.failure_reason, duplicate_of=prog.duplicate_of,
        tier=tier_label(prog) if prog.status == ProgramStatus.OK else None,
        inspiration_ids=prog.inspiration_ids or [],
        prompt=sample.prompt if sample else None, completion=sample.completion if sample else None,
        finish_reason=sample.finish_reason if sample else None,
        repair=sample.repair if sample else None,
        tokens=(sample.prompt_tokens + sample.completion_tokens) if sample else None,
        evaluations=[{"attempt": e.attempt, "status": e.status, "executor": e.executor,
                      "worker": e.worker, "stage": e.stage, "error_kind": e.error_kind,
                      "error": e.error, "duration_s": e.duration_s, "layers": e.layers}
                     for e in evals])
