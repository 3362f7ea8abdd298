"""The worker's database writes (service/execution/celery_tasks.py): real PostgreSQL, no broker."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from evaluators.jobs import EvalResult
from service.db import Database, upgrade
from service.db.models import EvaluationRow
from service.db.session import make_engine
from service.evolution.ledger import Ledger
from service.execution import celery_tasks as tasks
from service.problems.load import load_problem
from service.runs import create_run
from tests.conftest import PG_ADMIN
from tests.service.engine_helpers import config, tiny_problem


@pytest.fixture
def db(pg_url: str) -> Iterator[Database]:
    upgrade(pg_url)
    database = Database(pg_url)
    yield database
    conn = tasks._connections.pop(database.url, None)
    if conn is not None:
        conn.invalidate()
    database.close()


def queued(db: Database, tmp_path: Path) -> int:
    """Returns the id of a new queued evaluation."""
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    _, eid = Ledger(db, create_run(db, problem, config()), "celery").add_initial(
        problem.initial_code, "h")
    return eid


def server_pid(db: Database) -> int:
    """Returns the PostgreSQL backend pid behind this process's kept worker connection."""
    return int(tasks._execute(db, text("SELECT pg_backend_pid()")).scalar_one())


def test_start_counts_deliveries_and_stops_once_final(db: Database, tmp_path: Path) -> None:
    eid = queued(db, tmp_path)
    assert tasks._start(db, eid, "w1") == 1
    assert tasks._start(db, eid, "w2") == 2  # a redelivery after the first worker died
    assert tasks.finish(db, eid, EvalResult(status="ok", score=2.0, metrics={"s": 2.0}))
    assert tasks._start(db, eid, "w3") is None  # final: a late duplicate message does nothing
    with db.session() as s:
        ev = s.get(EvaluationRow, eid)
        assert (ev.status, ev.deliveries, ev.worker) == ("ok", 2, "w2")


def test_each_write_commits_on_its_own(db: Database, tmp_path: Path) -> None:
    eid = queued(db, tmp_path)
    tasks._start(db, eid, "w1")
    with psycopg.connect(db.url.replace("postgresql+psycopg://", "postgresql://")) as other:
        status, deliveries = other.execute(
            "SELECT status, deliveries FROM evaluations WHERE id = %s", (eid,)).fetchone()
    assert (status, deliveries) == ("running", 1)  # visible to others before the evaluation runs


def wal_syncs(db: Database) -> int:
    """Returns the server's count of WAL flushes to disk, this process's kept connection's own
    flushes included (its pending statistics are reported first)."""
    tasks._execute(db, text("SELECT pg_stat_force_next_flush()"))  # reported once it is idle
    with psycopg.connect(PG_ADMIN) as other:
        return int(other.execute("SELECT wal_sync FROM pg_stat_wal").fetchone()[0])


def test_the_delivery_counter_commits_without_waiting_for_the_disk_and_each_result_waits(
        db: Database, tmp_path: Path) -> None:
    if tasks._execute(db, text("SHOW fsync")).scalar_one() != "on":
        pytest.skip("the server does not flush its WAL to disk (fsync = off)")
    problem = load_problem(tiny_problem(tmp_path / "tiny"))
    ledger = Ledger(db, create_run(db, problem, config()), "celery")
    ids = [ledger.add_initial(f"{problem.initial_code}\n# {i}\n", f"h{i}")[1] for i in range(20)]
    before = wal_syncs(db)
    for eid in ids:
        assert tasks._start(db, eid, "w1") == 1
    started = wal_syncs(db)
    for eid in ids:
        assert tasks.finish(db, eid, EvalResult(status="ok", score=1.0, metrics={"s": 1.0}))
    finished = wal_syncs(db)
    assert started - before < 10  # the WAL writer's own flushes, every 200 ms at most
    assert finished - started >= len(ids)


def test_a_result_is_written_when_a_database_crash_lost_the_delivery_counter(
        db: Database, tmp_path: Path) -> None:
    eid = queued(db, tmp_path)  # still "queued": the counter's commit did not reach the disk
    assert tasks.finish(db, eid, EvalResult(status="ok", score=3.0, metrics={"s": 3.0}))
    assert not tasks.finish(db, eid, EvalResult(status="ok", score=4.0, metrics={"s": 4.0}))
    with db.session() as s:
        assert s.get(EvaluationRow, eid).status == "ok"


def test_a_connection_the_server_dropped_is_replaced_without_losing_the_write(
        db: Database, tmp_path: Path) -> None:
    eid = queued(db, tmp_path)
    before = server_pid(db)
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # as a server restart would
        admin.execute("SELECT pg_terminate_backend(%s)", (before,))
    assert tasks._start(db, eid, "w1") == 1
    assert server_pid(db) != before
    assert tasks.finish(db, eid, EvalResult(status="ok", score=1.0, metrics={"s": 1.0}))


def test_a_database_that_stays_down_raises_for_the_task_to_retry() -> None:
    class Unreachable:  # Database() would check the schema first; only the engine matters here
        url = "postgresql+psycopg://postgres@127.0.0.1:1/none"
        engine = make_engine(url)

    with pytest.raises(OperationalError):
        tasks._start(Unreachable(), 1, "w1")  # type: ignore[arg-type]
    assert Unreachable.url not in tasks._connections
