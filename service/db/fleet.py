"""The fleet as the database sees it: heartbeats of workers and controllers, the runs each
controller holds the lease of, and the evaluations waiting or running on each queue.

A member is alive while its last heartbeat is younger than the window, stopped once it signed
off, and lost otherwise (killed, its host gone, cut off from the database). Members silent for a
day drop out of the view (their rows stay).
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from service.db.models import EvaluationRow, FleetMemberRow, RunRow, utcnow
from service.db.status import EvaluationStatus

FORGET_S = 86_400.0  # lost or stopped members silent this long leave the view
LOCAL_QUEUE = "local"  # evaluations of the local pool (no Celery queue): in their controller


def evoforge_version() -> str:
    """Returns the installed evoforge version ("unknown" when run from a bare checkout)."""
    try:
        return version("evoforge")
    except PackageNotFoundError:
        return "unknown"


@dataclass(frozen=True)
class Identity:
    """Who beats: a worker (its Celery node name) or a controller (its lease owner id)."""

    kind: str  # worker | controller
    name: str
    queues: tuple[str, ...] = ()
    concurrency: int = 1
    host: str = field(default_factory=socket.gethostname)
    pid: int = field(default_factory=os.getpid)
    version: str = field(default_factory=evoforge_version)


def beat(s: Session, who: Identity, heartbeat_s: float) -> None:
    """Records that who is alive now (a new row the first time)."""
    now = utcnow()
    values: dict[str, Any] = {
        "kind": who.kind, "host": who.host, "pid": who.pid, "queues": list(who.queues),
        "concurrency": who.concurrency, "version": who.version, "heartbeat_s": heartbeat_s,
        "last_seen": now, "stopped_at": None}
    done = s.execute(update(FleetMemberRow).where(FleetMemberRow.name == who.name)
                     .values(**values))
    if not done.rowcount:  # one process per name beats: no other insert can race this one
        s.add(FleetMemberRow(name=who.name, started_at=now, **values))


def sign_off(s: Session, name: str) -> None:
    """Records that a member stopped cleanly (shown as stopped, never lost)."""
    s.execute(update(FleetMemberRow).where(FleetMemberRow.name == name)
              .values(stopped_at=utcnow()))


@dataclass
class DrivenRun:
    """A run whose lease a controller holds."""

    id: int
    status: str
    iterations: int


@dataclass
class Member:
    """A worker or controller and how it stands."""

    kind: str
    name: str
    host: str
    pid: int
    queues: list[str]
    concurrency: int
    version: str
    started_at: datetime
    last_seen: datetime
    silent_s: float
    state: str  # alive | lost | stopped
    runs: list[DrivenRun] = field(default_factory=list)


@dataclass
class QueueStats:
    """Evaluations waiting and running on one queue, and the workers alive that serve it."""

    name: str
    waiting: int = 0
    running: int = 0
    oldest_waiting_s: float | None = None
    workers_alive: int = 0


@dataclass
class Fleet:
    """Everything `evoforge status` and GET /api/fleet show."""

    at: datetime
    window_s: float
    members: list[Member]
    queues: list[QueueStats]

    def of(self, kind: str) -> list[Member]:
        """Returns the members of a kind."""
        return [m for m in self.members if m.kind == kind]


def aware(t: datetime) -> datetime:
    """Returns t with UTC as its zone (SQLite hands datetimes back naive)."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def state_of(row: FleetMemberRow, now: datetime, window_s: float) -> str:
    """Returns alive, lost or stopped."""
    if row.stopped_at is not None:
        return "stopped"
    return "lost" if (now - aware(row.last_seen)).total_seconds() > window_s else "alive"


def members(s: Session, now: datetime, window_s: float) -> list[Member]:
    """Returns the members heard from within the last day, controllers with their leased runs."""
    rows = s.scalars(select(FleetMemberRow).where(
        FleetMemberRow.last_seen >= now - timedelta(seconds=FORGET_S))
        .order_by(FleetMemberRow.kind, FleetMemberRow.name))
    driven = leased_runs(s, now)
    return [Member(kind=r.kind, name=r.name, host=r.host, pid=r.pid, queues=list(r.queues or []),
                   concurrency=r.concurrency, version=r.version, started_at=aware(r.started_at),
                   last_seen=aware(r.last_seen),
                   silent_s=max(0.0, (now - aware(r.last_seen)).total_seconds()),
                   state=state_of(r, now, window_s), runs=driven.get(r.name, []))
            for r in rows]


def leased_runs(s: Session, now: datetime) -> dict[str, list[DrivenRun]]:
    """Returns the runs under an unexpired lease, by lease owner (a controller's name)."""
    rows = s.execute(select(RunRow.lease_owner, RunRow.id, RunRow.status, RunRow.iterations)
                     .where(RunRow.lease_owner.is_not(None), RunRow.lease_expires_at > now)
                     .order_by(RunRow.id))
    out: dict[str, list[DrivenRun]] = {}
    for owner, run_id, status, iterations in rows:
        out.setdefault(owner, []).append(DrivenRun(run_id, status, iterations))
    return out


def queue_stats(s: Session, now: datetime) -> dict[str, QueueStats]:
    """Returns waiting and running evaluations and the oldest waiting one's age, by queue (the
    local pool's as "local")."""
    e = EvaluationRow
    rows = s.execute(select(e.queue, e.status, func.count(), func.min(e.created_at))
                     .where(e.status.in_((EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)))
                     .group_by(e.queue, e.status))
    out: dict[str, QueueStats] = {}
    for queue, status, count, oldest in rows:
        stats = out.setdefault(queue or LOCAL_QUEUE, QueueStats(queue or LOCAL_QUEUE))
        if status == EvaluationStatus.QUEUED:
            stats.waiting += count
            age = (now - aware(oldest)).total_seconds()
            stats.oldest_waiting_s = max(age, stats.oldest_waiting_s or 0.0)
        else:
            stats.running += count
    return out


def snapshot(s: Session, window_s: float, queues: tuple[str, ...] = ()) -> Fleet:
    """Returns the fleet now; queues are listed even while empty (the server's allowed ones)."""
    now = utcnow()
    found = members(s, now, window_s)
    stats = queue_stats(s, now)
    alive_workers = [m for m in found if m.kind == "worker" and m.state == "alive"]
    for name in (*queues, *(q for m in alive_workers for q in m.queues)):
        stats.setdefault(name, QueueStats(name))
    for q in stats.values():
        q.workers_alive = sum(q.name in m.queues for m in alive_workers)
    return Fleet(now, window_s, found, sorted(stats.values(), key=lambda q: q.name))
