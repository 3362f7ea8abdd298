"""The calling token: who it is, its scope and quota."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import func, select

from service.api.deps import Reader, SessionDep
from service.api.errors import responses
from service.api.schemas import TokenPublic
from service.db.models import RunRow
from service.db.status import ACTIVE

router = APIRouter(tags=["auth"], responses=responses(401))


@router.get("/me", response_model=TokenPublic)
def me(s: SessionDep, principal: Reader) -> TokenPublic:
    """Returns the calling token's name, scope, owner and active runs against its quota."""
    active = s.scalar(select(func.count()).select_from(RunRow).where(
        RunRow.owner_token_id == principal.owner_id, RunRow.status.in_(ACTIVE)))
    return TokenPublic(id=principal.token_id, name=principal.name, scope=principal.scope,
                       owner_id=principal.owner_id, max_active_runs=principal.max_active_runs,
                       active_runs=active or 0)
