"""`evoforge status`: the fleet at a glance: workers, controllers and the runs they drive, queues
with the evaluations waiting and the age of the oldest (what GET /api/fleet answers)."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.table import Table

from service.cli.common import DbOpt, JsonOpt, friendly, open_database, out
from service.db.fleet import Fleet, Member, snapshot

STATE_STYLE = {"alive": "green", "lost": "bold red", "stopped": "dim"}


def _ago(seconds: float | None) -> str:
    if seconds is None:
        return "–"
    if seconds < 120:
        return f"{seconds:.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 7200 else f"{seconds / 3600:.1f} h"


def _state(m: Member) -> str:
    return f"[{STATE_STYLE[m.state]}]{m.state}[/]"


def render(fleet: Fleet) -> list[Table]:
    """Returns the workers', controllers' and queues' tables."""
    workers = Table("worker", "host", "pid", "queues", "processes", "version", "last seen",
                    "state", title=f"Workers (lost after {fleet.window_s:g} s of silence)")
    for m in fleet.of("worker"):
        workers.add_row(m.name, m.host, str(m.pid), ", ".join(m.queues), str(m.concurrency),
                        m.version, _ago(m.silent_s) + " ago", _state(m))
    controllers = Table("controller", "host", "pid", "max runs", "version", "last seen", "state",
                        "runs driven", title="Controllers")
    for m in fleet.of("controller"):
        runs = ", ".join(f"{r.id} ({r.status}, {r.iterations} it.)" for r in m.runs) or "–"
        controllers.add_row(m.name, m.host, str(m.pid), str(m.concurrency), m.version,
                            _ago(m.silent_s) + " ago", _state(m), runs)
    queues = Table("queue", "waiting", "running", "oldest waiting", "workers alive",
                   title="Queues")
    for q in fleet.queues:
        alive = str(q.workers_alive) if q.workers_alive or q.name == "local" else "[red]0[/]"
        queues.add_row(q.name, str(q.waiting), str(q.running), _ago(q.oldest_waiting_s), alive)
    return [workers, controllers, queues]


def as_json(fleet: Fleet) -> dict:
    """Returns the fleet as GET /api/fleet answers it."""
    def member(m: Member) -> dict:
        return asdict(m) | {"started_at": m.started_at.isoformat(),
                            "last_seen": m.last_seen.isoformat()}
    return {"at": fleet.at.isoformat(), "window_s": fleet.window_s,
            "workers": [member(m) for m in fleet.of("worker")],
            "controllers": [member(m) for m in fleet.of("controller")],
            "queues": [asdict(q) for q in fleet.queues]}


@friendly
def status(db: DbOpt = None, json_out: JsonOpt = False,
           window: Annotated[float | None, typer.Option(
               help="Seconds of silence after which a member is lost (default "
                    "$EVOFORGE_HEARTBEAT_WINDOW_S, 30).")] = None) -> None:
    """Show the fleet: workers, controllers and the runs they drive, queues and their backlog."""
    database, settings = open_database(db)
    with database.session() as s:
        fleet = snapshot(s, window or settings.heartbeat_window_s, tuple(settings.allowed_queues))
    if json_out:
        print(json.dumps(as_json(fleet)))
        return
    for table in render(fleet):
        out.print(table)
    if not fleet.members:
        out.print("no worker or controller has written a heartbeat to this database yet: start "
                  "`evoforge worker --db URL` or `evoforge controller`", highlight=False)


def register(app: typer.Typer) -> None:
    """Adds `status` to the evoforge command."""
    app.command()(status)
