"""Runs: create with a config, start, pause, resume, stop, get with progress, list."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.api.auth_tokens import Principal
from service.api.deps import Reader, SessionDep, SettingsDep, Writer, problem_for, run_for
from service.api.errors import ApiError, responses
from service.api.policy import server_defaults, tenant_config
from service.api.schemas import Page, RunCreate, RunPublic, RunResume, json_numbers
from service.config import ConfigError, RunConfig, build_run_config
from service.db.models import ApiTokenRow, RunRow, utcnow
from service.db.queries import add_run
from service.db.status import ACTIVE, RESUMABLE, RunStatus, sources
from service.db.stored import problem_folder
from service.problems.load import ProblemError, load_problem
from service.settings import Settings

router = APIRouter(prefix="/runs", tags=["runs"], responses=responses(401, 422))
CHANGE = responses(403, 404, 409)  # what a change of a run's state can answer besides 200
IdPath = Annotated[int, Path(ge=1, le=2**62)]


def public(run: RunRow, with_config: bool = False) -> RunPublic:
    """Returns the API view of a run, with progress against its iteration budget."""
    out = RunPublic.model_validate(run)
    budget = (run.config or {}).get("budget", {}).get("iterations")
    out.budget_iterations = budget
    out.progress = min(1.0, run.iterations / budget) if budget else None
    out.config = run.config if with_config else None
    return out


def _check_quota(s: Session, principal: Principal, run_id: int | None = None) -> None:
    if principal.max_active_runs is None or principal.admin:
        return
    # One check at a time per owner: the owner's token row is locked until this request commits,
    # so two concurrent requests cannot both see room for one more run (a no-op on SQLite, whose
    # writers are serialised anyway).
    s.execute(select(ApiTokenRow.id).where(ApiTokenRow.id == principal.owner_id).with_for_update())
    stmt = select(func.count()).select_from(RunRow).where(
        RunRow.owner_token_id == principal.owner_id, RunRow.status.in_(ACTIVE))
    if run_id is not None:
        stmt = stmt.where(RunRow.id != run_id)
    active = s.scalar(stmt) or 0
    if active >= principal.max_active_runs:
        raise ApiError(429, f"token '{principal.name}' may have {principal.max_active_runs} "
                       f"active run(s) and has {active}; pause or stop one, or ask an admin "
                       "for a larger quota")


def _config(layers: list[dict], source: str, settings: Settings,
            principal: Principal) -> RunConfig:
    """Returns the merged config, or answers 422: invalid, or naming what only the operator sets."""
    try:
        cfg = build_run_config(*map(json_numbers, layers), source=source, strict=True)
    except ConfigError as exc:
        raise ApiError(422, str(exc), "invalid_config") from None
    return tenant_config(cfg, settings, principal, source)


@router.post("", status_code=201, response_model=RunPublic,
             responses=responses(400, 403, 404, 429))
def create_run(body: RunCreate, s: SessionDep, settings: SettingsDep,
               principal: Writer) -> RunPublic:
    """Creates a run of a problem; with start (the default) it is queued for a controller."""
    prow = problem_for(s, principal, body.problem_id)
    try:
        problem = load_problem(problem_folder(prow, settings))
    except ProblemError as exc:
        raise ApiError(422, f"stored problem {prow.id} does not load: {exc}") from None
    cfg = _config([server_defaults(settings), problem.run_defaults, body.config], "config",
                  settings, principal)
    if body.start:
        _check_quota(s, principal)
    run = add_run(s, prow.id, cfg.model_dump(mode="json"), cfg.seed)
    run.owner_token_id = principal.owner_id
    run.status = RunStatus.QUEUED if body.start else RunStatus.CREATED
    s.flush()
    return public(run, True)


@router.get("", response_model=Page[RunPublic])
def list_runs(s: SessionDep, principal: Reader,
              status: Annotated[RunStatus | None, Query(description="Only runs in this status.")]
              = None,
              problem_id: Annotated[int | None, Query(ge=1, le=2**62)] = None,
              limit: Annotated[int, Query(ge=1, le=500)] = 50,
              offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> Page[RunPublic]:
    """Lists the runs this token can see, newest first."""
    stmt = select(RunRow)
    if not principal.admin:
        stmt = stmt.where(RunRow.owner_token_id == principal.owner_id)
    if status:
        stmt = stmt.where(RunRow.status == status)
    if problem_id:
        stmt = stmt.where(RunRow.problem_id == problem_id)
    total = s.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = s.scalars(stmt.order_by(RunRow.id.desc()).limit(limit).offset(offset))
    return Page(items=[public(r) for r in rows], total=total, limit=limit, offset=offset)


@router.get("/{run_id}", response_model=RunPublic, responses=responses(404))
def get_run(run_id: IdPath, s: SessionDep, principal: Reader) -> RunPublic:
    """Returns a run's status, progress, counters and config."""
    return public(run_for(s, principal, run_id), True)


@router.post("/{run_id}/start", response_model=RunPublic, responses=CHANGE | responses(429))
def start_run(run_id: IdPath, s: SessionDep, settings: SettingsDep,
              principal: Writer) -> RunPublic:
    """Queues a created run for a controller."""
    run = run_for(s, principal, run_id, lock=True)
    if run.status != RunStatus.CREATED:
        raise ApiError(409, f"run {run_id} is {run.status}; only a created run starts "
                       "(a paused one resumes: POST /api/runs/{id}/resume)")
    run.config = _config([run.config], f"run {run_id}", settings, principal).model_dump(mode="json")
    _check_quota(s, principal, run_id)
    run.status = RunStatus.QUEUED
    return public(run)


@router.post("/{run_id}/pause", response_model=RunPublic, responses=CHANGE)
def pause_run(run_id: IdPath, s: SessionDep, principal: Writer) -> RunPublic:
    """Pauses a run: at once when queued, else its controller finishes in-flight work first."""
    return _halt(s, principal, run_id, "pause", RunStatus.PAUSED)


@router.post("/{run_id}/stop", response_model=RunPublic, responses=CHANGE)
def stop_run(run_id: IdPath, s: SessionDep, principal: Writer) -> RunPublic:
    """Stops a run for good: at once unless running, else after its in-flight work."""
    return _halt(s, principal, run_id, "stop", RunStatus.STOPPED)


def _halt(s: Session, principal: Principal, run_id: int, action: str,
          final: RunStatus) -> RunPublic:
    run = run_for(s, principal, run_id, lock=True)
    idle = [status for status in sources(final) if status != RunStatus.RUNNING]  # no lease
    if run.status in idle:
        done = s.execute(update(RunRow).where(RunRow.id == run_id, RunRow.status == run.status,
                                              RunRow.lease_owner.is_(None))
                         .values(status=final, control=None, stop_reason=f"{action} requested",
                                 finished_at=utcnow() if final == RunStatus.STOPPED else None))
        if done.rowcount == 1:
            s.refresh(run)
            return public(run)
    if run.status in ACTIVE:
        run.control = action  # the controller driving it sees this within a second
        return public(run)
    raise ApiError(409, f"run {run_id} is {run.status}; it cannot be {final}")


@router.post("/{run_id}/resume", response_model=RunPublic,
             responses=CHANGE | responses(400, 429))
def resume_run(run_id: IdPath, s: SessionDep, settings: SettingsDep, principal: Writer,
               body: RunResume | None = None) -> RunPublic:
    """Queues a paused run again, optionally with config changes (e.g. a larger budget)."""
    run = run_for(s, principal, run_id, lock=True)
    if run.status not in RESUMABLE:
        raise ApiError(409, f"run {run_id} is {run.status}; only a paused, failed or completed "
                       "run resumes")
    changes = body.config if body else {}  # the stored config is checked again as well
    run.config = _config([run.config, changes], f"run {run_id}", settings,
                         principal).model_dump(mode="json")
    _check_quota(s, principal, run_id)
    run.status, run.control, run.finished_at = RunStatus.QUEUED, None, None
    return public(run, True)
