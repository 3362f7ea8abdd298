"""What an operator asks of the service: /metrics (Prometheus), readiness, and the fleet."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import datetime

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text

from service.api.collector import DatabaseCollector, broker_configured
from service.api.deps import Admin, SessionDep, SettingsDep
from service.api.errors import ApiError, responses
from service.db import Database
from service.db.fleet import snapshot
from service.db.session import schema_state, shown
from service.execution.broker import ping
from service.settings import Settings
from service.telemetry import metrics

router = APIRouter(tags=["operations"])
CHECK_S = 5.0  # a check that takes longer counts as failed (a blackholed host never refuses)
_checks = ThreadPoolExecutor(max_workers=4, thread_name_prefix="readiness")


class Readiness(BaseModel):
    """Every dependency answered: what each check found."""

    status: str = Field(description="ready")
    checks: dict[str, str] = Field(description="database, schema, broker -> what was found")


class FleetRun(BaseModel):
    """A run whose lease a controller holds."""

    model_config = ConfigDict(from_attributes=True)
    id: int
    status: str
    iterations: int


class FleetMember(BaseModel):
    """A worker or controller as its heartbeats describe it."""

    model_config = ConfigDict(from_attributes=True)
    kind: str = Field(description="worker | controller")
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int = Field(description="worker: pool processes; controller: runs at once")
    version: str
    started_at: datetime
    last_seen: datetime
    silent_s: float = Field(description="Seconds since its last heartbeat.")
    state: str = Field(description="alive | lost (silent past the window) | stopped")
    runs: list[FleetRun]


class FleetQueue(BaseModel):
    """Evaluations waiting and running on one queue, and the workers alive serving it."""

    model_config = ConfigDict(from_attributes=True)
    name: str
    waiting: int
    running: int
    oldest_waiting_s: float | None
    workers_alive: int


class FleetPublic(BaseModel):
    """Workers, controllers (with the runs they drive) and queues."""

    model_config = ConfigDict(from_attributes=True)
    at: datetime
    window_s: float = Field(description="Heartbeat window: silent longer means lost.")
    workers: list[FleetMember]
    controllers: list[FleetMember]
    queues: list[FleetQueue]


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics(request: Request) -> Response:
    """Returns this process's metrics and the database's in the Prometheus text format."""
    body, content_type = metrics.exposition(request.headers.get("accept", ""),
                                            request.app.state.collector)
    return Response(body, media_type=content_type)


@router.get("/api/ready", tags=["health"], response_model=Readiness,
            responses={503: {"description": "A dependency is missing; the error's details name "
                                            "each one with the fix."}})
def ready(request: Request, settings: SettingsDep) -> Readiness:
    """Checks the database, its schema version (the code's Alembic head) and, when the server was
    given one, the Celery broker; answers 503 naming what is missing (no token needed)."""
    found = readiness(request.app.state.db, settings)
    failed = [{"where": name, "message": msg} for name, (ok, msg) in found.items() if not ok]
    if failed:
        raise ApiError(503, "not ready: " + "; ".join(f"{f['where']}: {f['message']}"
                                                      for f in failed), "not_ready", failed)
    return Readiness(status="ready", checks={name: msg for name, (_, msg) in found.items()})


def readiness(db: Database, settings: Settings) -> dict[str, tuple[bool, str]]:
    """Returns each check's (ok, what it found or what is wrong and the fix)."""
    found: dict[str, tuple[bool, str]] = {}
    where = shown(db.url)
    try:
        current, head = _checks.submit(_database, db).result(timeout=CHECK_S)
    except FutureTimeout:
        late = f"{where} did not answer within {CHECK_S:g} s; check that it runs and is " \
            "reachable (EVOFORGE_DB)"
        found["database"] = (False, late)
    except Exception as exc:  # noqa: BLE001 - every driver error means "not reachable"
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        found["database"] = (False, f"{where} unreachable ({first}); start it or fix EVOFORGE_DB")
    else:
        found["database"] = (True, f"{where} answers")
        behind = f"at {current or 'empty'}, the code needs {head}: run " \
            f"`evoforge db upgrade --db {where}`"
        found["schema"] = (current == head, f"at {current}" if current == head else behind)
    if broker_configured(settings):
        try:
            problem = _checks.submit(ping, settings.broker, CHECK_S).result(timeout=CHECK_S + 1)
        except FutureTimeout:
            problem = f"broker {shown(settings.broker)} did not answer within {CHECK_S:g} s"
        found["broker"] = (problem is None, problem or f"{shown(settings.broker)} answers")
    return found


def _database(db: Database) -> tuple[str | None, str]:
    with db.engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    return schema_state(db.engine)


@router.get("/api/fleet", response_model=FleetPublic, responses=responses(401, 403))
def fleet(s: SessionDep, settings: SettingsDep, principal: Admin) -> FleetPublic:
    """Returns the workers, the controllers with the runs they drive, and the queues with the
    evaluations waiting and the age of the oldest (admin tokens only)."""
    found = snapshot(s, settings.heartbeat_window_s, tuple(settings.allowed_queues))
    return FleetPublic(at=found.at, window_s=found.window_s,
                       workers=[FleetMember.model_validate(m) for m in found.of("worker")],
                       controllers=[FleetMember.model_validate(m) for m in found.of("controller")],
                       queues=[FleetQueue.model_validate(q) for q in found.queues])


def install(app: object, db: Database, settings: Settings) -> None:
    """Turns metrics on in this process and gives the app its database collector."""
    metrics.enable()
    app.state.collector = DatabaseCollector(db, settings)  # type: ignore[attr-defined]
