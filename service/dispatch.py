"""Hands evaluations to an executor: the local pool of sandboxed processes, or Celery workers."""

from __future__ import annotations

import asyncio
import sys
from typing import Protocol

from evaluators import sandbox
from evaluators.jobs import EvalJob, EvalResult
from evaluators.runner import evaluate_job
from service.config import ConfigError, EvaluationConfig, Settings
from service.db import Database
from service.problem import Problem


class ExecutorUnavailable(RuntimeError):
    """The executor cannot take work now (e.g. the broker is down); the candidate stays pending."""


class Executor(Protocol):
    """Scores jobs somewhere; the engine only sees this. An executor whose workers close the
    evaluation rows themselves sets `writes_results = True`."""

    async def evaluate(self, job: EvalJob) -> EvalResult:
        """Returns the result of one job; failures are results, never exceptions."""
        ...

    async def aclose(self, kill: bool = False) -> None:
        """Refuses new evaluations and waits for running ones (killing them first when kill)."""
        ...


class LocalExecutor:
    """Runs at most `workers` sandboxed evaluations at once on this machine."""

    def __init__(self, workers: int, python: str = sys.executable) -> None:
        if workers < 1:
            raise ValueError(f"workers = {workers}; use at least 1")
        self.workers = workers
        self.python = python
        self._slots = asyncio.Semaphore(workers)
        self._running: set[asyncio.Task[EvalResult]] = set()
        self._closed = False

    async def evaluate(self, job: EvalJob) -> EvalResult:
        """Returns the result of job, scored in a sandboxed process when a slot is free."""
        if self._closed:
            raise RuntimeError("LocalExecutor is closed; make a new one to evaluate more jobs")
        await self._slots.acquire()
        task = asyncio.ensure_future(asyncio.to_thread(evaluate_job, job, self.python))
        self._running.add(task)
        task.add_done_callback(self._finished)
        # If the caller is cancelled the process still runs to its own time limit; its slot stays
        # taken until then, so there are never more than `workers` processes.
        return await asyncio.shield(task)

    def _finished(self, task: asyncio.Task[EvalResult]) -> None:
        self._running.discard(task)
        self._slots.release()

    async def aclose(self, kill: bool = False) -> None:
        """Refuses new evaluations and waits for running ones (killing them first when kill)."""
        self._closed = True
        if kill:
            sandbox.kill_all()
        if self._running:
            await asyncio.gather(*self._running, return_exceptions=True)


def make_executor(cfg: EvaluationConfig, db: Database | None = None,
                  broker: str | None = None) -> Executor:
    """Returns the executor that cfg.executor names (celery needs the run's database)."""
    if cfg.executor == "local":
        return LocalExecutor(cfg.workers)
    if cfg.executor == "celery":
        from service.celery_executor import CeleryExecutor

        if db is None:
            raise ConfigError("evaluation.executor = 'celery' needs the run's database")
        return CeleryExecutor(db, cfg.broker or broker or Settings().broker, cfg.queue)
    raise ConfigError(f"evaluation.executor = {cfg.executor!r}; use local or celery")


def make_job(problem: Problem, code: str, cfg: EvaluationConfig, *, program_id: int | None = None,
             evaluation_id: int | None = None, seed: int = 0) -> EvalJob:
    """Returns the job that scores code on problem under cfg's limits and cascade."""
    scorer = str(problem.scorer_path.relative_to(problem.path)) if problem.scorer_path else ""
    return EvalJob(code=code, problem_dir=str(problem.path),
                   evaluator_file=str(problem.evaluator_path), score_metric=problem.score_metric,
                   score_fallback_mean=problem.score_fallback_mean,
                   timeout_s=cfg.timeout_s, memory_mb=cfg.memory_mb,
                   cascade_thresholds=list(cfg.cascade_thresholds), program_id=program_id,
                   evaluation_id=evaluation_id, seed=seed, scorer=scorer, entry=problem.entry or "",
                   prefork=cfg.prefork)
