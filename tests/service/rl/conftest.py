"""Fixtures for the RL tests: the converted base model (cached across runs) and small runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from service.config import RunConfig, Settings
from service.db import Database, upgrade
from service.execution.local import LocalExecutor
from service.llm.models import base_model_dir
from service.llm.scripted import ScriptedBackend
from service.problems.load import load_problem
from service.runs import create_run, make_engine
from tests.service.engine_helpers import config, returns, tiny_problem


@pytest.fixture(scope="session")
def base_dir() -> Path:
    """Returns the HF folder converted from the embedded SmolLM2 GGUF (converted once, cached)."""
    return base_model_dir()


def scripted_run(url: str, folder: Path, cfg: RunConfig | None = None,
                 answers: list[str] | None = None, small_model: bool = True
                 ) -> tuple[Database, int]:
    """Returns (db, run id) of a tiny-problem run driven to its budget by a scripted LLM
    (small_model=False: a large model, which the loop asks for SEARCH/REPLACE diffs)."""
    cfg = cfg or config(budget__iterations=3)
    if url.startswith("postgresql"):
        upgrade(url)
    db = Database(url)
    problem = load_problem(tiny_problem(folder))
    run_id = create_run(db, problem, cfg)
    llm = ScriptedBackend(answers or [returns(3), returns(5), returns(2)],
                          small_model=small_model)

    async def go() -> None:
        ex = LocalExecutor(cfg.evaluation.workers)
        try:
            await make_engine(db, run_id, problem, cfg, llm, ex, Settings()).run()
        finally:
            await ex.aclose()

    asyncio.run(go())
    return db, run_id
