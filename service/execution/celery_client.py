"""The Celery executor: evaluations go to workers, which write results to the database it reads."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from kombu.exceptions import OperationalError
from sqlalchemy import bindparam, select

from evaluators.jobs import EvalJob, EvalResult
from service.db import Database
from service.db.models import EvaluationRow
from service.execution import celery_tasks as tasks
from service.execution.base import ExecutorUnavailable

log = logging.getLogger("evoforge.celery")
FINISHED = select(EvaluationRow.id, EvaluationRow.result).where(
    EvaluationRow.id.in_(bindparam("ids", expanding=True)),
    EvaluationRow.status.in_(("ok", "failed")), EvaluationRow.result.is_not(None))
RETRY_POLICY = {"max_retries": 5, "interval_start": 0.2, "interval_step": 0.5, "interval_max": 3}


class CeleryExecutor:
    """Queues each job on its capability queue; a worker scores it and closes its evaluation row."""

    writes_results = True

    def __init__(self, db: Database, broker: str, queue: str = "cpu", poll_s: float = 0.05) -> None:
        self.db, self.broker, self.queue, self.poll_s = db, broker, queue, poll_s
        self.app = tasks.client_app(broker)
        self._waiting: dict[int, asyncio.Future[EvalResult]] = {}
        self._poller: asyncio.Task[None] | None = None
        self._checked = False
        self._check_lock = asyncio.Lock()
        self._reader = tasks.KeptConnection(db)  # the poller's; polls never overlap
        self._inspection: asyncio.Task[None] | None = None

    async def evaluate(self, job: EvalJob) -> EvalResult:
        """Sends job and returns the result its worker writes (waits across worker restarts)."""
        if job.evaluation_id is None:
            raise ValueError("a Celery job needs its evaluation id (workers write results by id)")
        async with self._check_lock:  # once per executor, not once per concurrent job
            if not self._checked:
                await asyncio.to_thread(self._check_broker)
                self._checked = True
                # Asking the workers takes a second (inspect waits for every reply): it runs
                # beside the first sends, which it only warns about, instead of before them.
                self._inspection = asyncio.create_task(asyncio.to_thread(self._warn_if_unserved))
        future: asyncio.Future[EvalResult] = asyncio.get_running_loop().create_future()
        self._waiting[job.evaluation_id] = future
        try:
            await asyncio.to_thread(self._send, job)
        except ExecutorUnavailable:
            self._waiting.pop(job.evaluation_id, None)
            raise
        if self._poller is None or self._poller.done():
            self._poller = asyncio.create_task(self._poll())
        return await future

    def _check_broker(self) -> None:
        try:
            with self.app.connection_for_write() as conn:
                conn.ensure_connection(max_retries=2, interval_start=0.2)
        except Exception as exc:  # noqa: BLE001 - kombu raises several kinds here
            raise ExecutorUnavailable(
                f"Celery broker {self.broker} is unreachable ({exc}); start RabbitMQ/Redis or pass "
                "--broker URL") from None

    def _warn_if_unserved(self) -> None:
        """Logs a warning when no worker consumes this executor's queue."""
        if not self._workers_on_queue():
            log.warning("no Celery worker serves queue %r yet; evaluations wait until one does "
                        "(`evoforge worker --queues %s`)", self.queue, self.queue)

    def _workers_on_queue(self) -> bool:
        try:
            replies = self.app.control.inspect(timeout=1.0).active_queues() or {}
        except Exception:  # noqa: BLE001 - inspecting is best effort
            return True
        return any(q.get("name") == self.queue for qs in replies.values() for q in qs)

    def _send(self, job: EvalJob) -> None:
        limit = tasks.time_limit_for(job)
        try:
            self.app.send_task(tasks.TASK_NAME, args=[job.evaluation_id, job.to_dict(),
                                                      str(self.db.url)],
                               queue=self.queue, time_limit=limit, retry=True,
                               retry_policy=RETRY_POLICY,
                               # what logs and `celery inspect` show of the task; given, Celery
                               # does not render the job (code and all) and the database URL
                               argsrepr=f"(evaluation {job.evaluation_id})", kwargsrepr="{}")
        except OperationalError as exc:
            raise ExecutorUnavailable(f"cannot send to the broker {self.broker}: {exc}") from None

    async def _poll(self) -> None:
        while self._waiting:
            ids = list(self._waiting)
            try:
                done = await asyncio.to_thread(self._finished, ids)
            except Exception as exc:  # noqa: BLE001 - the database may be restarting
                log.warning("reading evaluation results failed (%s); retrying", exc)
                await asyncio.sleep(1.0)
                continue
            for eid, payload in done:
                future = self._waiting.pop(eid, None)
                if future is not None and not future.done():
                    future.set_result(EvalResult.from_dict(payload))
            await asyncio.sleep(self.poll_s)

    def _finished(self, ids: list[int]) -> list[tuple[int, dict[str, Any]]]:
        """Returns the results workers wrote for these evaluations: one autocommitted SELECT on
        a connection the poller keeps (no pool checkout, BEGIN or COMMIT per poll)."""
        rows = self._reader.execute(FINISHED, {"ids": ids})
        return [(eid, payload) for eid, payload in rows]

    async def aclose(self, kill: bool = False) -> None:
        """Stops waiting; evaluations already sent finish on their workers, are read on resume."""
        for task in (self._poller, self._inspection):
            if task is not None:
                task.cancel()
        for future in self._waiting.values():
            future.cancel()
        self._waiting.clear()
        self._reader.close()
