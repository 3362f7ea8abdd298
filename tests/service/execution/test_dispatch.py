"""make_executor builds the executor a run's config names; make_job carries the problem to it."""

from __future__ import annotations

import asyncio

from service.config import EvaluationConfig
from service.execution.base import make_job
from service.execution.dispatch import make_executor
from service.execution.local import LocalExecutor
from service.problems.load import load_problem
from tests.conftest import REPO

GOOD = REPO / "tests" / "fixtures" / "problems" / "good"


def test_make_executor_builds_a_local_pool_and_make_job_carries_the_problem() -> None:
    cfg = EvaluationConfig(workers=3, timeout_s=12, memory_mb=512, cascade_thresholds=[0.1])
    executor = make_executor(cfg)
    assert isinstance(executor, LocalExecutor) and executor.workers == 3
    problem = load_problem(GOOD)
    job = make_job(problem, problem.initial_code, cfg, program_id=7)
    assert (job.timeout_s, job.memory_mb, job.cascade_thresholds) == (12, 512, [0.1])
    assert job.evaluator_file == str(GOOD / "evaluator.py") and job.program_id == 7
    result = asyncio.run(executor.evaluate(job))
    assert result.ok and result.score == 1.0
