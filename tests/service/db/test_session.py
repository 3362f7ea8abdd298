"""The database layer on real SQLite files and real PostgreSQL databases."""

from __future__ import annotations

import psycopg
import pytest
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text

from service.db import Database, SchemaOutOfDate, session, upgrade
from service.db.models import ProgramRow
from service.db.queries import (
    acquire_lease,
    add_problem,
    add_run,
    best_program,
    export_rows,
    hash_index,
    open_evaluation,
    release_lease,
    renew_lease,
    unfinished_programs,
)
from service.db.session import DB_DOWN, schema_state
from service.problems.load import load_problem
from tests.conftest import PG_ADMIN, REPO

QUICKSTART = REPO / "problems" / "quickstart"


def test_embedded_sqlite_is_migrated_automatically(sqlite_url: str) -> None:
    db = Database(sqlite_url)
    tables = set(inspect(db.engine).get_table_names())
    assert {"problems", "runs", "programs", "llm_samples", "evaluations"} <= tables
    current, head = schema_state(db.engine)
    assert current == head


def test_postgres_refuses_an_unmigrated_schema_with_the_command_to_run(pg_url: str) -> None:
    with pytest.raises(SchemaOutOfDate, match=r"evoforge db upgrade --db postgresql\+psycopg://"):
        Database(pg_url)
    upgrade(pg_url)
    Database(pg_url).close()


def _stored_run(url: str) -> tuple[Database, int]:
    if url.startswith("postgresql"):
        upgrade(url)
    db = Database(url)
    with db.session() as s:
        prob = add_problem(s, load_problem(QUICKSTART))
        run = add_run(s, prob.id, {"seed": 1}, 1)
        return db, run.id


def test_programs_round_trip_and_best_follows_direction(db_url: str) -> None:
    db, run_id = _stored_run(db_url)
    with db.session() as s:
        for i, score in enumerate([0.3, 0.9, 0.5]):
            s.add(ProgramRow(run_id=run_id, code=f"x={i}", code_hash=f"h{i}", status="ok",
                             score=score, metrics={"combined_score": score}))
    with db.session() as s:
        assert best_program(s, run_id, "maximize").score == 0.9
        assert best_program(s, run_id, "minimize").score == 0.3
        rows = list(export_rows(s, run_id))
    assert [r["score"] for r in rows] == [0.3, 0.9, 0.5]
    assert rows[1]["metrics"] == {"combined_score": 0.9}


def test_hash_index_ignores_duplicates_and_migrants(db_url: str) -> None:
    db, run_id = _stored_run(db_url)
    with db.session() as s:
        s.add(ProgramRow(run_id=run_id, code="a", code_hash="A", status="ok"))
        s.add(ProgramRow(run_id=run_id, code="a", code_hash="A", status="duplicate"))
        s.add(ProgramRow(run_id=run_id, code="b", code_hash="B", status="ok", kind="migrant"))
    with db.session() as s:
        index = hash_index(s, run_id)
    assert list(index) == ["A"]


def test_a_new_attempt_marks_the_old_one_lost(db_url: str) -> None:
    db, run_id = _stored_run(db_url)
    with db.session() as s:
        prog = ProgramRow(run_id=run_id, code="a", code_hash="A", status="evaluating")
        s.add(prog)
        s.flush()
        first = open_evaluation(s, prog, "local")
        second = open_evaluation(s, prog, "local")
        assert (first.attempt, second.attempt) == (1, 2)
        s.refresh(first)
        assert first.status == "lost" and second.status == "queued"
        assert [p.id for p in unfinished_programs(s, run_id)] == [prog.id]


def test_lease_is_exclusive_until_released(db_url: str) -> None:
    db, run_id = _stored_run(db_url)
    with db.session() as s:
        assert acquire_lease(s, run_id, "hostA:1")
    with db.session() as s:
        assert not acquire_lease(s, run_id, "hostB:2")  # remote owner, lease not expired
        assert renew_lease(s, run_id, "hostA:1")
        assert not renew_lease(s, run_id, "hostB:2")
        release_lease(s, run_id, "hostA:1")
    with db.session() as s:
        assert acquire_lease(s, run_id, "hostB:2")


def test_lease_of_a_dead_local_process_is_taken_over(db_url: str) -> None:
    import socket
    import subprocess

    proc = subprocess.Popen(["true"])
    proc.wait()
    db, run_id = _stored_run(db_url)
    with db.session() as s:
        assert acquire_lease(s, run_id, f"{socket.gethostname()}:{proc.pid}")
    with db.session() as s:
        assert acquire_lease(s, run_id, "me:1")


def test_upgrade_is_idempotent(pg_url: str) -> None:
    upgrade(pg_url)
    upgrade(pg_url)
    db = Database(pg_url)
    head = ScriptDirectory(str(REPO / "migrations")).get_current_head()
    with db.engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    db.close()
    assert head is not None and current == head


def _backend_pid(db: Database) -> int:
    with db.session() as s:
        return s.scalar(text("SELECT pg_backend_pid()"))


def _drop_connection(pid: int) -> None:
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:  # as a server restart would
        admin.execute("SELECT pg_terminate_backend(%s)", (pid,))


@pytest.mark.parametrize("idle_s", [0.0, 3600.0])
def test_a_pooled_connection_is_pinged_only_after_it_was_idle(
        pg_url: str, idle_s: float, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(session, "PING_AFTER_IDLE_S", idle_s)
    upgrade(pg_url)
    db = Database(pg_url)
    try:
        before = _backend_pid(db)
        _drop_connection(before)
        if idle_s == 0.0:  # idle long enough: the ping finds it dead and a new one serves
            assert _backend_pid(db) != before
        else:  # used a moment ago: no round trip spent on a ping; its loss reaches the caller
            with pytest.raises(DB_DOWN):
                _backend_pid(db)
            assert _backend_pid(db) != before  # ... and the pool replaced it
    finally:
        db.close()
