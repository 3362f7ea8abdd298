"""Drives the engine in tests: a run of a problem folder in a real database, scored by the real
local sandbox. The one place that creates the run, builds the engine, runs it and closes the
executor; tests choose the problem, config, LLM backend and, when they need them, a training
hook, settings, a run to resume or an executor."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.config import RunConfig
from service.db import Database, upgrade
from service.db.models import RunRow
from service.evolution.engine import Engine
from service.evolution.training import TrainingHook
from service.execution.base import Executor
from service.execution.local import LocalExecutor
from service.llm.base import LLMBackend
from service.llm.scripted import ScriptedBackend
from service.problems.load import load_problem
from service.runs import create_run, make_engine
from service.settings import Settings
from tests.service.engine_helpers import config, returns, tiny_problem


def open_db(url: str) -> Database:
    """Returns the database at url (a PostgreSQL one is migrated first)."""
    if url.startswith("postgresql"):
        upgrade(url)
    return Database(url)


def build(target: str | Database, folder: Path, cfg: RunConfig, llm: LLMBackend, *,
          run_id: int | None = None, training: TrainingHook | None = None,
          settings: Settings | None = None, executor: Executor | None = None
          ) -> tuple[Database, Engine]:
    """Returns the database and the engine, not started yet, of a new run of the problem in
    folder (or of run_id's, to resume it). The engine is the one runs.make_engine builds (test-time
    RL when cfg.rl.enabled) unless a training hook is given; the executor defaults to a local pool
    of cfg.evaluation.workers."""
    db = target if isinstance(target, Database) else open_db(target)
    problem = load_problem(folder)
    if run_id is None:
        run_id = create_run(db, problem, cfg)
    executor = executor or LocalExecutor(cfg.evaluation.workers)
    if training is not None:
        return db, Engine(db, run_id, problem, cfg, llm, executor, training=training)
    return db, make_engine(db, run_id, problem, cfg, llm, executor, settings or Settings())


def run_to_stop(engine: Engine) -> RunRow:
    """Runs a built engine to its stop in a new event loop, then closes its executor; returns the
    final run row."""
    async def go() -> RunRow:
        try:
            return await engine.run()
        finally:
            await engine.executor.aclose()
    return asyncio.run(go())


def drive(target: str | Database, folder: Path, cfg: RunConfig, llm: LLMBackend, *,
          run_id: int | None = None, training: TrainingHook | None = None,
          settings: Settings | None = None, executor: Executor | None = None
          ) -> tuple[Database, RunRow, Engine]:
    """Runs a new run of the problem in folder (or resumes run_id's) to its stop; returns the
    database, the final run row and the engine."""
    db, engine = build(target, folder, cfg, llm, run_id=run_id, training=training,
                       settings=settings, executor=executor)
    return db, run_to_stop(engine), engine


def scripted_run(url: str, folder: Path, cfg: RunConfig | None = None,
                 answers: list[str] | None = None, small_model: bool = True
                 ) -> tuple[Database, int]:
    """Returns (db, run id) of a tiny-problem run (written into folder) driven to its budget by a
    scripted LLM (small_model=False: a large model, which the loop asks for SEARCH/REPLACE
    diffs)."""
    llm = ScriptedBackend(answers or [returns(3), returns(5), returns(2)], small_model=small_model)
    db, run, _ = drive(url, tiny_problem(folder), cfg or config(budget__iterations=3), llm)
    return db, run.id


def in_thread(engine: Engine) -> tuple[threading.Thread, list]:
    """Runs the engine to its stop in a daemon thread; the list gets the run row."""
    out: list = []
    thread = threading.Thread(target=lambda: out.append(run_to_stop(engine)), daemon=True)
    thread.start()
    return thread, out


def wait_until(predicate: Callable[[], Any], timeout: float = 60.0) -> Any:
    """Returns predicate's first truthy value, polled every 0.1 s; fails after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")
