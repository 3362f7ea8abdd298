"""PostgreSQL restarted under a running controller: the run goes on after reconnecting.

This restarts the shared server, so it is marked runs_last (tests/conftest.py moves it to the
end of the session) and other tests are never disrupted mid-way.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import DBAPIError

from service.db import Database, upgrade
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow
from tests.conftest import PG_ADMIN
from tests.service.controller_helpers import queued_run, run_row, start_controller, wait_for

pytestmark = [pytest.mark.runs_last, pytest.mark.postgres]


def _restart_postgres() -> None:
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", "15", "main", "restart"],
                   check=True, timeout=120)
    deadline = time.monotonic() + 60
    while True:
        try:
            psycopg.connect(PG_ADMIN, connect_timeout=2).close()
            return
        except psycopg.OperationalError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    upgrade(pg_url)
    db = Database(pg_url)
    yield db
    db.close()


def _safe_run(db: Database, run_id: int) -> RunRow | None:
    try:
        return run_row(db, run_id)
    except DBAPIError:  # the server is restarting
        return None


def test_run_continues_after_postgres_restarts(pg: Database, tmp_path: Path) -> None:
    iterations = 40
    run_id = queued_run(pg, tmp_path, iterations)
    log = tmp_path / "controller.log"
    proc = start_controller(pg.url, tmp_path / "home", log)
    try:
        wait_for(lambda: run_row(pg, run_id).iterations >= 6, 90, "controller made no progress",
                 log)
        before = run_row(pg, run_id).iterations
        _restart_postgres()
        wait_for(lambda: (r := _safe_run(pg, run_id)) is not None and r.status == "completed",
                 180, "run did not complete after the restart", log)
        assert proc.poll() is None, "the controller must survive the restart"
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
    assert before < iterations
    run = run_row(pg, run_id)
    assert run.iterations == iterations
    with pg.session() as s:
        progs = list(s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id)))
        samples = s.scalar(select(func.count()).select_from(LLMSampleRow)
                           .where(LLMSampleRow.run_id == run_id))
        finished = dict(s.execute(
            select(EvaluationRow.program_id, func.count()).where(
                EvaluationRow.run_id == run_id, EvaluationRow.status.in_(("ok", "failed")))
            .group_by(EvaluationRow.program_id)).all())
    assert samples == iterations
    assert all(p.status in ("ok", "failed", "duplicate") for p in progs)
    assert all(finished.get(p.id) == 1 for p in progs
               if p.status in ("ok", "failed") and p.kind != "migrant")
    assert "database unreachable" in log.read_text() or "lost the database" in log.read_text()
