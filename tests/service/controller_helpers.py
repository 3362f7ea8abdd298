"""Helpers for the controller tests: a queued run of the tiny problem, a controller process,
polling until a condition holds."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from service.db import Database
from service.db.models import RunRow
from service.db.queries import add_problem, add_run
from service.problems.load import load_problem
from tests.service.engine_helpers import config, returns, tiny_problem

REPO = Path(__file__).resolve().parents[2]
EVOFORGE = str(Path(sys.executable).parent / "evoforge")


def queued_run(db: Database, tmp: Path, iterations: int, **over: object) -> int:
    """Stores the tiny problem and a queued run of it with scripted answers; returns its id."""
    tmp.mkdir(parents=True, exist_ok=True)
    answers = tmp / "answers.json"
    answers.write_text(json.dumps([returns(round(1 + i * 0.37, 2)) for i in range(60)]))
    cfg = config(budget__iterations=iterations, llm={"backend": "scripted", "model": str(answers)},
                 **over)
    with db.session() as s:
        prob = add_problem(s, load_problem(tiny_problem(tmp / "p")))
        run = add_run(s, prob.id, cfg.model_dump(mode="json"), cfg.seed)
        run.status = "queued"
        return run.id


def run_row(db: Database, run_id: int) -> RunRow:
    """Returns the run's row as stored now."""
    with db.session() as s:
        return s.get(RunRow, run_id)


def wait_for(what: Callable[[], bool], timeout: float, message: str,
             log: Path | None = None) -> None:
    """Polls what every 0.2 s; fails with message (and the log's tail) after timeout."""
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(message + (f"; its log:\n{log.read_text()[-3000:]}" if log else ""))
        time.sleep(0.2)


def start_controller(url: str, home: Path, log: Path) -> subprocess.Popen:
    """Starts `evoforge controller` on url in its own session, output to log."""
    return subprocess.Popen(
        [EVOFORGE, "controller", "--db", url, "--poll", "0.2", "-v"],
        cwd=REPO, env={**os.environ, "EVOFORGE_HOME": str(home)}, start_new_session=True,
        stdout=log.open("w"), stderr=subprocess.STDOUT)
