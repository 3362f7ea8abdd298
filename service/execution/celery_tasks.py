"""Celery tasks: a worker scores one evaluation and writes the result into the database itself.

The message carries the evaluation id, the job and the database URL. The worker commits an attempt
counter before it starts (so a candidate that keeps killing its worker is failed, not redelivered
forever) and writes the result with a conditional update keyed by the evaluation id, so a
redelivered or duplicated message can never finish an evaluation twice. The controller only reads
results.
"""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy import Connection, CursorResult, Executable, bindparam, func, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from evaluators.evaluate import evaluate_job
from evaluators.jobs import EvalJob, EvalResult, FailureKind
from service.db import Database, SchemaOutOfDate
from service.db.binds import bound
from service.db.models import EvaluationRow, ProblemRow, RunRow, utcnow
from service.db.status import EvaluationStatus
from service.db.stored import write_files
from service.telemetry import metrics
from service.telemetry.logs import log_context

log = logging.getLogger("evoforge.tasks")
TASK_NAME = "evoforge.evaluate"
MAX_DELIVERIES = int(os.environ.get("EVOFORGE_MAX_DELIVERIES", "3"))
# Redis re-sends a task that runs longer than this (and only this long after a worker dies).
REDIS_VISIBILITY_S = int(os.environ.get("EVOFORGE_REDIS_VISIBILITY_TIMEOUT", "3600"))

CONF: dict[str, Any] = {
    "task_acks_late": True,               # a task is acknowledged only once its result is written
    "task_reject_on_worker_lost": True,   # ... and goes back to the queue if its worker dies
    "worker_prefetch_multiplier": 1,      # a worker holds no more tasks than it runs
    "task_ignore_result": True,           # results go to the database, not to a result backend
    "task_serializer": "json", "accept_content": ["json"],
    "task_default_queue": "cpu",
    "broker_connection_retry_on_startup": True,
    "broker_transport_options": {"visibility_timeout": REDIS_VISIBILITY_S},
    "worker_hijack_root_logger": False,
    "worker_cancel_long_running_tasks_on_connection_loss": False,
}
app = Celery("evoforge")  # the worker's app; controllers send through client_app(broker)
app.conf.update(CONF)
_databases: dict[str, Database] = {}
_connections: dict[str, KeptConnection] = {}  # one kept connection per database per process
_problem_dirs: dict[tuple[str, int], Path] = {}
_clients: dict[str, Celery] = {}
DB_RETRY_S = 5.0
DB_RETRIES = 60  # a database that is down for about five minutes fails the task, not the run


def configure(broker: str) -> Celery:
    """Points the worker's Celery app at a broker URL; returns the app."""
    app.conf.broker_url = broker
    return app


def client_app(broker: str) -> Celery:
    """Returns a sending-side Celery app for a broker (one per URL: each app has its own pools)."""
    if broker not in _clients:
        client = Celery("evoforge-client", broker=broker, set_as_current=False)
        client.conf.update(CONF)
        _clients[broker] = client
    return _clients[broker]


def _db(url: str) -> Database:
    if url not in _databases:  # one engine per database per worker process (created after fork)
        _databases[url] = Database(url, migrate=False)
    return _databases[url]


def time_limit_for(job: EvalJob) -> float:
    """Returns the hard Celery time limit for a job: above the sandbox's own wall-clock limits."""
    stages = 1 + len(job.cascade_thresholds)
    return job.timeout_s * (stages + 1) + 60


@app.task(name=TASK_NAME, bind=True, max_retries=DB_RETRIES)
def evaluate(self: Any, evaluation_id: int, job: dict[str, Any], db_url: str) -> str:
    """Scores one evaluation in the sandbox and writes its result; returns what happened."""
    db_url = os.environ.get("EVOFORGE_WORKER_DB") or db_url  # `evoforge worker --db` wins
    try:
        with log_context(evaluation_id=evaluation_id, program_id=job.get("program_id")):
            return _evaluate(self, evaluation_id, job, db_url)
    except (SQLAlchemyError, SchemaOutOfDate) as exc:  # the database is restarting or migrating
        log.warning("evaluation %s: database unavailable (%s); retrying in %.0f s",
                    evaluation_id, exc, DB_RETRY_S)
        raise self.retry(exc=exc, countdown=DB_RETRY_S) from None


def _evaluate(self: Any, evaluation_id: int, job: dict[str, Any], db_url: str) -> str:
    db = _db(db_url)
    deliveries = _start(db, evaluation_id, self.request.hostname or socket.gethostname())
    if deliveries is None:
        return "already finished"
    if deliveries > MAX_DELIVERIES:
        result = EvalResult.failure(
            FailureKind.CRASH, f"the evaluation killed its worker {deliveries - 1} times; not "
                               f"retried (EVOFORGE_MAX_DELIVERIES={MAX_DELIVERIES})")
    else:
        result = evaluate_job(_localise(db, db_url, evaluation_id, EvalJob(**job)))
    if not finish(db, evaluation_id, result):
        return "already finished"
    if not result.ok:
        log.info("evaluation failed (%s): %s", result.error_kind,
                 ((result.error or "").strip().splitlines() or [""])[-1])
    metrics.evaluation((self.request.delivery_info or {}).get("routing_key") or "unknown",
                       result.status, result.error_kind, result.duration_s, result.layers)
    return "written"


# Built once with bound parameters: SQLAlchemy builds and keys them once, not at every write.
_EV = EvaluationRow.__table__
START = (update(_EV).where(_EV.c.id == bindparam("v_key"),
                           _EV.c.status.in_((EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)))
         .values(deliveries=_EV.c.deliveries + 1, status=EvaluationStatus.RUNNING,
                 **bound(_EV, ("worker", "started_at")))
         .returning(_EV.c.deliveries))
# On PostgreSQL the delivery counter commits without waiting for its WAL to reach the disk
# (synchronous_commit off for that one transaction): every session sees it at once, and only a
# crash of the database server itself can lose it, which costs one more delivery at most.
START_ASYNC_COMMIT = START.returning(func.set_config("synchronous_commit", "off", True))
# A result commits durably, before its message is acknowledged. It is written over "queued" too:
# a delivery counter lost with a database crash must not drop the result that followed it.
FINISH = (update(_EV).where(_EV.c.id == bindparam("v_key"),
                            _EV.c.status.in_((EvaluationStatus.QUEUED, EvaluationStatus.RUNNING)))
          .values(**bound(_EV, ("status", "result", "stage", "error_kind", "error", "duration_s",
                                "layers", "finished_at"))))


def _start(db: Database, evaluation_id: int, worker: str) -> int | None:
    """Commits the delivery counter; returns it, or None when the evaluation is already final."""
    statement = START_ASYNC_COMMIT if db.engine.dialect.name == "postgresql" else START
    row = _execute(db, statement, {"v_key": evaluation_id, "v_worker": worker,
                                   "v_started_at": utcnow()}).first()
    return None if row is None else int(row[0])


def finish(db: Database, evaluation_id: int, result: EvalResult) -> bool:
    """Writes a result once; returns False when another delivery already wrote one."""
    done = _execute(db, FINISH, {
        "v_key": evaluation_id,
        "v_status": EvaluationStatus.OK if result.ok else EvaluationStatus.FAILED,
        "v_result": result.to_dict(), "v_stage": result.stage, "v_error_kind": result.error_kind,
        "v_error": result.error, "v_duration_s": result.duration_s,
        "v_layers": result.layers or None, "v_finished_at": utcnow()})
    return done.rowcount == 1


def _execute(db: Database, statement: Executable,
             params: dict[str, Any] | None = None) -> CursorResult[Any]:
    """Runs one statement in its own transaction on this process's kept connection (one per
    database): one round trip, no pool checkout or ping per write."""
    kept = _connections.get(db.url) or KeptConnection(db)
    result = kept.execute(statement, params)
    _connections[db.url] = kept  # kept once it has worked
    return result


class KeptConnection:
    """A connection kept open in autocommit mode: each statement is one round trip, committed on
    its own. A connection the server dropped (a restart) is replaced once; other errors go to
    the caller. Not for concurrent use."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.conn: Connection | None = None

    def execute(self, statement: Executable,
                params: dict[str, Any] | None = None) -> CursorResult[Any]:
        """Runs statement (with params) and returns its result."""
        for attempt in (0, 1):
            if self.conn is None or self.conn.closed:
                self.conn = self.db.engine.connect().execution_options(
                    isolation_level="AUTOCOMMIT")
            try:
                return self.conn.execute(statement, params)
            except DBAPIError as exc:
                self.conn.invalidate()
                self.conn = None
                if not exc.connection_invalidated or attempt:
                    raise
        raise AssertionError("unreachable")

    def close(self) -> None:
        """Gives the connection back to the pool."""
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def invalidate(self) -> None:
        """Drops the connection (the pool does not take it back)."""
        if self.conn is not None:
            self.conn.invalidate()
            self.conn = None


def _localise(db: Database, db_url: str, evaluation_id: int, job: EvalJob) -> EvalJob:
    """Points the job at a local copy of its problem when the controller's folder is not here."""
    if Path(job.evaluator_file).is_file():
        return job
    with db.session() as s:
        problem_id = s.scalar(select(RunRow.problem_id).join(
            EvaluationRow, EvaluationRow.run_id == RunRow.id).where(
            EvaluationRow.id == evaluation_id))
        key = (db_url, int(problem_id))
        if key not in _problem_dirs:
            prow = s.get(ProblemRow, problem_id)
            folder = _worker_home() / f"problem-{os.getpid()}-{len(_problem_dirs)}-{problem_id}"
            write_files(prow.files, folder)
            _problem_dirs[key] = folder
    folder = _problem_dirs[key]
    job.problem_dir = str(folder)
    job.evaluator_file = str(folder / Path(job.evaluator_file).name)
    return job


def _worker_home() -> Path:
    home = Path(os.environ.get("EVOFORGE_HOME", ".evoforge")).resolve() / "worker"
    home.mkdir(parents=True, exist_ok=True)
    return home
