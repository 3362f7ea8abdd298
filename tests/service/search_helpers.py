"""Running the engine for the search-feature tests: a tiny problem, real sandbox, real database."""

from __future__ import annotations

import asyncio
from pathlib import Path

from service.config import RunConfig
from service.db import Database, upgrade
from service.db.models import RunRow
from service.evolution.engine import Engine
from service.evolution.training import TrainingHook
from service.execution.local import LocalExecutor
from service.llm.base import LLMBackend
from service.problems.load import load_problem
from service.runs import create_run


def drive(url: str, folder: Path, cfg: RunConfig, llm: LLMBackend,
          run_id: int | None = None, training: TrainingHook | None = None
          ) -> tuple[Database, RunRow, Engine]:
    """Runs (or resumes) a run of the problem in folder to its stop; returns db, run row, engine."""
    if url.startswith("postgresql"):
        upgrade(url)
    db = Database(url)
    problem = load_problem(folder)
    if run_id is None:
        run_id = create_run(db, problem, cfg)

    async def go() -> tuple[RunRow, Engine]:
        ex = LocalExecutor(cfg.evaluation.workers)
        engine = Engine(db, run_id, problem, cfg, llm, ex, training=training)
        try:
            return await engine.run(), engine
        finally:
            await ex.aclose()
    row, engine = asyncio.run(go())
    return db, row, engine
