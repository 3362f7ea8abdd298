"""Problems: create from a JSON map of files or an archive, list, get, delete."""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path as FsPath
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request, UploadFile
from sqlalchemy import func, select

from service.api.deps import Reader, SessionDep, SettingsDep, Writer, problem_for
from service.api.errors import ApiError, responses
from service.api.policy import check_upload
from service.api.schemas import Page, ProblemCreate, ProblemPublic
from service.api.uploads import check_files, read_archive
from service.db.models import ProblemRow, RunRow
from service.db.queries import add_problem
from service.db.status import ACTIVE
from service.execution.check import check_problem

router = APIRouter(prefix="/problems", tags=["problems"], responses=responses(401, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]


def _store(files: dict[str, str], request: Request, s: SessionDep, settings: SettingsDep,
           principal: Writer) -> ProblemPublic:
    """Validates the files in the sandbox, then stores the problem under the caller's token."""
    limit = request.app.state.max_upload_bytes
    files = check_files(files, limit)
    check_upload(files, settings, principal)
    folder = (settings.home / "problems" / f"upload-{uuid.uuid4().hex[:12]}").resolve()
    folder.mkdir(parents=True)
    try:
        for name, text in files.items():  # names checked: relative, inside the folder
            (folder / name).parent.mkdir(parents=True, exist_ok=True)
            (folder / name).write_text(text)
        report = check_problem(folder)  # problem code runs only in the sandbox
        if not report.ok or report.problem is None:
            details = [{"file": _rel(d.file, folder), "message": d.message, "fix": d.fix}
                       for d in report.defects] or [{"file": "evaluator.py", "message":
                                                     "the initial program was not scored",
                                                     "fix": "run `evoforge problems check`"}]
            summary = "; ".join(f"{d['file']}: {d['message']} (fix: {d['fix']})" for d in details)
            raise ApiError(422, f"the problem does not pass its checks: {summary}",
                           "invalid_problem", details)
        row = add_problem(s, report.problem)
        row.owner_token_id = principal.owner_id
        s.flush()
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    out = ProblemPublic.model_validate(row)
    out.initial_score = report.result.score if report.result else None
    out.notes, out.warnings = list(report.problem.notes), list(report.warnings)
    return out


def _rel(file: str, folder: FsPath) -> str:
    return file.replace(f"{folder}/", "").replace(str(folder), ".")


@router.post("", status_code=201, response_model=ProblemPublic,
             responses=responses(400, 403, 413))
def create_problem(body: ProblemCreate, request: Request, s: SessionDep, settings: SettingsDep,
                   principal: Writer) -> ProblemPublic:
    """Creates a problem from a map of file name -> text; its initial program is checked."""
    return _store(body.files, request, s, settings, principal)


@router.post("/upload", status_code=201, response_model=ProblemPublic,
             responses=responses(400, 403, 413))
def upload_problem(archive: UploadFile, request: Request, s: SessionDep, settings: SettingsDep,
                   principal: Writer) -> ProblemPublic:
    """Creates a problem from a zip or tar(.gz) archive of its folder."""
    limit = request.app.state.max_upload_bytes
    data = archive.file.read(limit + 1)
    files = read_archive(data, archive.filename or "archive", limit)
    return _store(files, request, s, settings, principal)


@router.get("", response_model=Page[ProblemPublic])
def list_problems(s: SessionDep, principal: Reader,
                  limit: Annotated[int, Query(ge=1, le=500)] = 50,
                  offset: Annotated[int, Query(ge=0, le=10**9)] = 0) -> Page[ProblemPublic]:
    """Lists the problems this token can see, newest first."""
    stmt = select(ProblemRow)
    if not principal.admin:
        stmt = stmt.where(ProblemRow.owner_token_id == principal.owner_id)
    total = s.scalar(select(func.count()).select_from(stmt.subquery()))
    rows = s.scalars(stmt.order_by(ProblemRow.id.desc()).limit(limit).offset(offset))
    return Page(items=[ProblemPublic.model_validate(r) for r in rows], total=total, limit=limit,
                offset=offset)


# :int, so that /upload with another method is a 405, not a problem id that fails validation
@router.get("/{problem_id:int}", response_model=ProblemPublic, responses=responses(404))
def get_problem(problem_id: IdPath, s: SessionDep, principal: Reader) -> ProblemPublic:
    """Returns a problem with its files."""
    row = problem_for(s, principal, problem_id)
    out = ProblemPublic.model_validate(row)
    out.files = dict(row.files)
    return out


@router.delete("/{problem_id:int}", status_code=204, responses=responses(403, 404, 409))
def delete_problem(problem_id: IdPath, s: SessionDep, settings: SettingsDep,
                   principal: Writer) -> None:
    """Deletes a problem and its runs; refused while one of its runs is active."""
    row = problem_for(s, principal, problem_id)
    active = s.scalar(select(func.count()).select_from(RunRow).where(
        RunRow.problem_id == problem_id, RunRow.status.in_(ACTIVE)))
    if active:
        raise ApiError(409, f"problem {problem_id} has {active} active run(s); stop them first "
                       "(POST /api/runs/{id}/stop)")
    folder = FsPath(row.path)
    s.delete(row)
    s.flush()
    if folder.is_relative_to((settings.home / "problems").resolve()):
        shutil.rmtree(folder, ignore_errors=True)
