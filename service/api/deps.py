"""Typed dependencies: the database session, the calling token, and ownership checks."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.orm import Session

from service.api.auth_tokens import Principal, authenticate
from service.api.errors import ApiError, not_found
from service.db import Database
from service.db.models import ProblemRow, ProgramRow, RunRow
from service.settings import Settings


def get_db(request: Request) -> Database:
    """Returns the app's Database."""
    return request.app.state.db


def get_settings(request: Request) -> Settings:
    """Returns the app's Settings."""
    return request.app.state.settings


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """Yields a session that commits when the request succeeds."""
    with db.session() as s:
        yield s


SessionDep = Annotated[Session, Depends(get_session, scope="function")]  # commit before 201
SettingsDep = Annotated[Settings, Depends(get_settings)]
# Declares the bearer scheme in the OpenAPI document; get_principal reads the header itself, so
# that a missing and a malformed one get different 401 messages.
BEARER = HTTPBearer(auto_error=False, description="A token from `evoforge tokens create`.")
Bearer = Annotated[HTTPAuthorizationCredentials | None, Security(BEARER)]


def get_principal(request: Request, s: SessionDep) -> Principal:
    """Returns the caller's token, or answers 401 naming how to get one."""
    header = request.headers.get("authorization", "")
    scheme, _, secret = header.partition(" ")
    if not header:
        raise ApiError(401, "missing token: send `Authorization: Bearer <token>`; create one "
                       "with `evoforge tokens create --name NAME --scope read|write|admin`")
    if scheme.lower() != "bearer" or not secret.strip():
        raise ApiError(401, "malformed Authorization header: use `Bearer <token>`")
    principal = authenticate(s, secret.strip())
    if principal is None:
        raise ApiError(401, "unknown or revoked token; `evoforge tokens list` shows the tokens")
    return principal


def _scoped(scope: str) -> Any:
    def check(principal: Annotated[Principal, Depends(get_principal)], _: Bearer) -> Principal:
        if not principal.allows(scope):
            raise ApiError(403, f"token '{principal.name}' has scope {principal.scope}; this "
                           f"needs {scope}: create a {scope} token")
        return principal
    return check


Reader = Annotated[Principal, Depends(_scoped("read"))]
Writer = Annotated[Principal, Depends(_scoped("write"))]
Admin = Annotated[Principal, Depends(_scoped("admin"))]


def owns(principal: Principal, owner_token_id: int | None) -> bool:
    """Returns True when the principal may see the row: admin, or the row is its owner's."""
    return principal.admin or owner_token_id == principal.owner_id


def problem_for(s: Session, principal: Principal, problem_id: int) -> ProblemRow:
    """Returns a visible problem or answers 404."""
    row = s.get(ProblemRow, problem_id)
    if row is None or not owns(principal, row.owner_token_id):
        raise not_found("problem", problem_id)
    return row


def run_for(s: Session, principal: Principal, run_id: int, lock: bool = False) -> RunRow:
    """Returns a visible run (row-locked when lock) or answers 404."""
    row = s.get(RunRow, run_id, with_for_update=lock)
    if row is None or not owns(principal, row.owner_token_id):
        raise not_found("run", run_id)
    return row


def program_for(s: Session, principal: Principal, program_id: int) -> ProgramRow:
    """Returns a program of a visible run or answers 404."""
    row = s.get(ProgramRow, program_id)
    if row is None:
        raise not_found("program", program_id)
    run = s.get(RunRow, row.run_id)
    if run is None or not owns(principal, run.owner_token_id):
        raise not_found("program", program_id)
    return row
