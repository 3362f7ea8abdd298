"""The local executor: a pool of sandboxed evaluation processes on this machine."""

from __future__ import annotations

import asyncio
import sys

from evaluators.evaluate import evaluate_job
from evaluators.isolation import sandbox
from evaluators.jobs import EvalJob, EvalResult


class LocalExecutor:
    """Runs at most `workers` sandboxed evaluations at once on this machine."""

    writes_results = False  # the engine writes each result

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
