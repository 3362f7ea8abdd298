"""Controllers on real PostgreSQL: claiming runs, pause/stop requests, SIGKILL and takeover."""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from service.api.app import create_app
from service.api.auth_tokens import create_token
from service.controller import Controller, run_controller
from service.db import Database, upgrade
from service.db.models import EvaluationRow, LLMSampleRow, ProgramRow, RunRow, utcnow
from service.settings import Settings
from tests.service.controller_helpers import queued_run, run_row, start_controller, wait_for


@contextmanager
def controller_thread(db: Database, settings: Settings) -> Iterator[None]:
    """Runs a controller in a thread of this process; stops it on exit."""
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()
    thread = threading.Thread(target=loop.run_until_complete, args=(
        run_controller(db, settings, max_runs=2, poll_s=0.2, stop=stop),))
    thread.start()
    try:
        yield
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout=60)
        loop.close()


@pytest.fixture
def pg(pg_url: str) -> Iterator[Database]:
    upgrade(pg_url)
    db = Database(pg_url)
    yield db
    db.close()


def test_controller_drives_queued_runs_and_honours_pause_resume_stop_from_the_api(
        pg: Database, tmp_path: Path) -> None:
    # the runs are made as the CLI makes them (an answers path in llm.model): through the API
    # only an admin of a server that allows raw configs may resume such a run
    settings = Settings(home=tmp_path / "home", db=pg.url, admin_raw_config=True)
    quick = queued_run(pg, tmp_path / "a", 3)
    long = queued_run(pg, tmp_path / "b", 200)
    with pg.session() as s:
        token, secret = create_token(s, "owner", "admin")
        s.get(RunRow, long).owner_token_id = token.id
    client = TestClient(create_app(pg, settings))
    h = {"Authorization": f"Bearer {secret}"}
    with controller_thread(pg, settings):
        wait_for(lambda: run_row(pg, quick).status == "completed", 60, "quick run not completed")
        wait_for(lambda: run_row(pg, long).iterations >= 4, 60, "long run did not start")
        assert client.post(f"/api/runs/{long}/pause", headers=h).json()["control"] == "pause"
        # control is cleared once the pause settled
        wait_for(lambda: (run_row(pg, long).status, run_row(pg, long).control)
                 == ("paused", None), 30, "pause did not reach the engine")
        paused = run_row(pg, long)
        assert paused.stop_reason == "paused by request" and paused.control is None
        assert paused.lease_owner is None and paused.iterations < 200
        time.sleep(1)
        assert run_row(pg, long).iterations == paused.iterations  # nothing moves while paused
        assert client.post(f"/api/runs/{long}/resume", headers=h).json()["status"] == "queued"
        wait_for(lambda: run_row(pg, long).iterations > paused.iterations, 30, "resume failed")
        assert client.post(f"/api/runs/{long}/stop", headers=h).json()["control"] == "stop"
        wait_for(lambda: run_row(pg, long).status == "stopped", 30, "stop did not reach the engine")
    final = run_row(pg, long)
    assert final.finished_at is not None and final.iterations < 200
    with pg.session() as s:
        unfinished = s.scalar(select(func.count()).select_from(ProgramRow).where(
            ProgramRow.run_id == long, ProgramRow.status.in_(("pending", "evaluating"))))
    assert unfinished == 0  # in-flight evaluations finished before the stop


def test_a_live_lease_is_respected_and_an_expired_one_taken(pg: Database, tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home", db=pg.url)
    run_id = queued_run(pg, tmp_path, 2)
    with pg.session() as s:
        run = s.get(RunRow, run_id)
        run.status, run.lease_owner = "running", "another-host:4242"
        run.lease_expires_at = utcnow() + timedelta(seconds=30)
    ctl = Controller(pg, settings)
    assert ctl._claim_some(4) == []
    with pg.session() as s:
        s.get(RunRow, run_id).lease_expires_at = utcnow() - timedelta(seconds=1)
    assert ctl._claim_some(4) == [run_id]
    assert run_row(pg, run_id).lease_owner == ctl.owner


def test_sigkilled_controller_is_taken_over_with_nothing_lost_or_duplicated(
        pg: Database, tmp_path: Path) -> None:
    iterations = 30
    run_id = queued_run(pg, tmp_path, iterations)
    first = start_controller(pg.url, tmp_path / "home1", tmp_path / "c1.log")
    second = None
    try:
        wait_for(lambda: run_row(pg, run_id).iterations >= 8, 90, "first controller made no "
                 "progress", tmp_path / "c1.log")
        os.killpg(first.pid, signal.SIGKILL)  # the controller and its evaluation processes
        first.wait()
        killed_at = run_row(pg, run_id)
        assert killed_at.status == "running" and killed_at.iterations < iterations
        second = start_controller(pg.url, tmp_path / "home2", tmp_path / "c2.log")
        wait_for(lambda: run_row(pg, run_id).status == "completed", 120,
                 "second controller did not finish", tmp_path / "c2.log")
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
    run = run_row(pg, run_id)
    assert run.iterations == iterations and run.lease_owner is None
    with pg.session() as s:
        progs = list(s.scalars(select(ProgramRow).where(ProgramRow.run_id == run_id)))
        samples = s.scalar(select(func.count()).select_from(LLMSampleRow)
                           .where(LLMSampleRow.run_id == run_id))
        finished = dict(s.execute(
            select(EvaluationRow.program_id, func.count()).where(
                EvaluationRow.run_id == run_id, EvaluationRow.status.in_(("ok", "failed")))
            .group_by(EvaluationRow.program_id)).all())
    mutations = [p for p in progs if p.kind == "mutation"]
    assert samples == iterations  # one completion per iteration, none repeated
    assert sorted(p.iteration for p in mutations) == sorted({p.iteration for p in mutations})
    assert all(p.status in ("ok", "failed", "duplicate") for p in progs)
    evaluated = [p for p in progs if p.status in ("ok", "failed") and p.kind != "migrant"]
    assert all(finished.get(p.id) == 1 for p in evaluated), "each program has one final result"


def test_sigterm_hands_runs_back_for_another_controller(pg: Database, tmp_path: Path) -> None:
    run_id = queued_run(pg, tmp_path, 200)
    proc = start_controller(pg.url, tmp_path / "home", tmp_path / "c.log")
    try:
        wait_for(lambda: run_row(pg, run_id).iterations >= 3, 90, "no progress", tmp_path / "c.log")
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    run = run_row(pg, run_id)
    assert (run.status, run.lease_owner, run.control) == ("queued", None, None)
