"""The fleet as the database sees it: a member beats, goes silent (lost) or signs off (stopped);
controllers drive the runs whose lease they hold; queues count their waiting and running
evaluations and the age of the oldest waiting one."""

from __future__ import annotations

import time
from datetime import timedelta
from pathlib import Path

from sqlalchemy import update

from service.db.fleet import Identity, beat, sign_off, snapshot
from service.db.heartbeat import Heartbeat
from service.db.models import EvaluationRow, FleetMemberRow, RunRow, utcnow
from service.db.queries import acquire_lease
from tests.service.driver import open_db, scripted_run

WORKER = Identity("worker", "evoforge-7@box", ("cpu", "gpu"), 4, "box", 7, "0.1.0")


def test_a_member_is_alive_then_lost_when_silent_and_stopped_once_signed_off(db_url: str) -> None:
    db = open_db(db_url)
    with db.session() as s:
        beat(s, WORKER, 10)
        beat(s, WORKER, 10)  # the same row again
    with db.session() as s:
        [member] = snapshot(s, 30).members
        assert (member.state, member.queues, member.concurrency) == ("alive", ["cpu", "gpu"], 4)
        s.execute(update(FleetMemberRow).values(last_seen=utcnow() - timedelta(seconds=31)))
    with db.session() as s:
        fleet = snapshot(s, 30)
        assert [m.state for m in fleet.members] == ["lost"]
        assert {q.name: q.workers_alive for q in fleet.queues} == {}  # a lost worker serves none
        sign_off(s, WORKER.name)
    with db.session() as s:
        assert [m.state for m in snapshot(s, 30).members] == ["stopped"]
        beat(s, WORKER, 10)  # a member that beats again is alive again
    with db.session() as s:
        assert [m.state for m in snapshot(s, 30).members] == ["alive"]


def test_the_heartbeat_thread_beats_at_once_and_signs_off_when_stopped(sqlite_url: str) -> None:
    db = open_db(sqlite_url)
    heart = Heartbeat(db, Identity("controller", "box:1", concurrency=2), 0.05).start()
    deadline = time.monotonic() + 10
    while True:
        with db.session() as s:
            if snapshot(s, 1).members:
                break
        assert time.monotonic() < deadline, "no heartbeat written"
        time.sleep(0.02)
    heart.stop()
    with db.session() as s:
        [member] = snapshot(s, 1).of("controller")
        assert member.state == "stopped" and member.concurrency == 2


def test_controllers_drive_their_leased_runs_and_queues_count_their_backlog(
        db_url: str, tmp_path: Path) -> None:
    db, run_id = scripted_run(db_url, tmp_path / "tiny")
    with db.session() as s:
        beat(s, Identity("controller", "box:9"), 10)
        beat(s, WORKER, 10)
        assert acquire_lease(s, run_id, "box:9")
        s.execute(update(EvaluationRow).where(EvaluationRow.run_id == run_id)
                  .values(status="queued", queue="cpu", created_at=utcnow() - timedelta(
                      seconds=90)))
        s.execute(update(RunRow).where(RunRow.id == run_id).values(status="running"))
    with db.session() as s:
        fleet = snapshot(s, 30, ("cpu", "gpu", "io"))
    [controller] = fleet.of("controller")
    assert [(r.id, r.status) for r in controller.runs] == [(run_id, "running")]
    queues = {q.name: q for q in fleet.queues}
    assert set(queues) == {"cpu", "gpu", "io"}
    assert queues["cpu"].waiting == 4 and queues["cpu"].running == 0  # initial + 3 children
    assert 89 <= queues["cpu"].oldest_waiting_s < 200
    assert (queues["gpu"].workers_alive, queues["io"].workers_alive) == (1, 0)
    assert queues["io"].oldest_waiting_s is None
