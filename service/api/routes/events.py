"""Live events of a run as server-sent events: progress snapshots and newly stored programs."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Path, Query, Request, Security
from fastapi.responses import StreamingResponse
from sqlalchemy import select
from starlette.concurrency import run_in_threadpool

from service.api.auth_tokens import Principal, authenticate
from service.api.deps import BEARER, get_principal, run_for
from service.api.errors import ApiError, responses
from service.api.routes.programs import SUMMARY_COLUMNS
from service.api.routes.runs import public
from service.api.schemas import ProgramSummary
from service.db import Database
from service.db.models import ProgramRow
from service.db.status import FINAL

router = APIRouter(tags=["events"], responses=responses(401, 404, 422))
IdPath = Annotated[int, Path(ge=1, le=2**62)]


def _principal(db: Database, request: Request, access_token: str | None) -> Principal:
    with db.session() as s:
        if access_token and "authorization" not in request.headers:
            principal = authenticate(s, access_token)  # EventSource cannot send headers
            if principal is None:
                raise ApiError(401, "unknown or revoked access_token")
            return principal
        return get_principal(request, s)


def _snapshot(db: Database, principal: Principal, run_id: int,
              after: int) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    with db.session() as s:
        run = public(run_for(s, principal, run_id)).model_dump(mode="json")
        rows = s.execute(select(*SUMMARY_COLUMNS).where(ProgramRow.run_id == run_id,
                                                        ProgramRow.id > after)
                         .order_by(ProgramRow.id).limit(200)).mappings()
        progs = [ProgramSummary.model_validate(dict(r)).model_dump(mode="json") for r in rows]
    return run, progs


def _event(name: str, data: dict[str, Any]) -> str:
    return f"event: {name}\ndata: {json.dumps(data, default=str)}\n\n"


@router.get("/runs/{run_id}/events", response_class=StreamingResponse,
            responses={200: {"content": {"text/event-stream": {}}}},
            dependencies=[Security(BEARER)])
async def run_events(run_id: IdPath, request: Request,
                     access_token: Annotated[str | None, Query(max_length=200)] = None,
                     interval_s: Annotated[float, Query(ge=0.2, le=60)] = 1.0,
                     max_seconds: Annotated[float, Query(gt=0, le=86_400)] = 3600.0
                     ) -> StreamingResponse:
    """Streams `progress` (the run, when it changes) and `program` (each new program) events;
    ends with `end` once the run is completed, stopped or failed. `access_token` stands in for
    the Authorization header where a browser's EventSource cannot send it."""
    db: Database = request.app.state.db
    principal = await run_in_threadpool(_principal, db, request, access_token)
    await run_in_threadpool(_snapshot, db, principal, run_id, 2**62)  # a 404 comes now

    async def stream() -> AsyncIterator[str]:
        last: dict[str, Any] | None = None
        after, deadline = 0, time.monotonic() + max_seconds
        while time.monotonic() < deadline:
            run, progs = await run_in_threadpool(_snapshot, db, principal, run_id, after)
            for prog in progs:
                after = prog["id"]
                yield _event("program", prog)
            if run != last:
                last = run
                yield _event("progress", run)
            if run["status"] in FINAL and not progs:
                yield _event("end", {"run_id": run_id, "status": run["status"]})
                return
            if await request.is_disconnected():
                return
            await asyncio.sleep(interval_s if not progs else 0)
        yield _event("end", {"run_id": run_id, "status": last["status"] if last else None,
                             "reason": "max_seconds reached; reconnect to go on"})

    return StreamingResponse(stream(), media_type="text/event-stream",
                             headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
