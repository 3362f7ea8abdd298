"""`evoforge worker`: a Celery worker that scores candidates in the sandbox, writes the results."""

from __future__ import annotations

import logging
import os
import socket
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import LogFormatOpt, MetricsPortOpt, fail, json_logs, say, settings_for
from service.cli.common import setup_logging as setup_cli_logging
from service.telemetry.logs import LogFormat

log = logging.getLogger("evoforge.worker")


def worker(
    queues: Annotated[str, typer.Option(help="Capabilities this worker serves, comma-separated "
                                        "(Celery queues), e.g. cpu or cpu,gpu.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Evaluations at once (worker processes).")] = 2,
    broker: Annotated[str | None, typer.Option(help="Broker URL (default $EVOFORGE_BROKER, "
                                               "else RabbitMQ on 127.0.0.1).")] = None,
    db: Annotated[str | None, typer.Option(help="How this worker reaches the database (default: "
                                           "the URL each task carries from its controller). Its "
                                           "heartbeats go there, else to $EVOFORGE_DB.")] = None,
    name: Annotated[str | None, typer.Option(help="Worker node name (default evoforge-PID@host).")]
    = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "WARNING",
    metrics_port: MetricsPortOpt = None,
    log_format: LogFormatOpt = LogFormat.RICH,
) -> None:
    """Start a Celery worker that evaluates candidates in the sandbox and writes the results."""
    from celery.signals import worker_ready, worker_shutdown

    from evaluators.isolation.layers import available_layers, become_subreaper

    if concurrency < 1:
        fail("--concurrency must be at least 1")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if not wanted:
        fail("--queues is empty; name at least one, e.g. --queues cpu")
    settings = settings_for(None)
    if metrics_port:  # before the pool forks: every pool process adds to the same files
        _metrics_dir(settings.home)
    url = broker or settings.broker
    if db:
        os.environ["EVOFORGE_WORKER_DB"] = db
    _logging(log_format, loglevel)
    become_subreaper()  # sandboxed processes orphaned by a candidate are reaped by this worker
    layers = available_layers()  # in JSON, the sandbox's own records say these
    for layer in [] if json_logs() else layers:
        say(f"sandbox {layer}")
    say(f"worker serving {', '.join(wanted)} with {concurrency} processes on {url}")
    from service.execution.celery_tasks import configure

    app = configure(url)
    node = name or f"evoforge-{os.getpid()}@{socket.gethostname()}"
    beats: list[Any] = []

    @worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        if metrics_port:
            from service.telemetry import metrics

            metrics.serve(metrics_port)
            say(f"worker metrics on :{metrics_port}/metrics")
        beats.extend(_heartbeat(db or settings.db, node, wanted, concurrency,
                                settings.heartbeat_s))
        say(f"evoforge worker {node} ready")

    @worker_shutdown.connect(weak=False)
    def _shutdown(**_: object) -> None:
        for beat in beats:
            beat.stop()

    app.worker_main(argv=[*(["--quiet"] if json_logs() else []),  # no banner on stdout
                          "worker", "--queues", ",".join(wanted), "--concurrency",
                          str(concurrency), "--pool", "prefork", "--hostname", node,
                          "--loglevel", loglevel, "--without-gossip", "--without-mingle"])


def _metrics_dir(home: Path) -> None:
    """Puts prometheus_client in multiprocess mode over $PROMETHEUS_MULTIPROC_DIR, else a fresh
    folder under the worker's home."""
    from service.telemetry import metrics

    folder = os.environ.get(metrics.MULTIPROC_VAR) or \
        home.resolve() / "worker" / f"metrics-{os.getpid()}"
    metrics.enable(Path(folder))


def _logging(log_format: LogFormat, loglevel: str) -> None:
    """In JSON, Celery's logging goes through ours (one JSON object a line); else Celery's own."""
    if LogFormat(log_format) is not LogFormat.JSON:
        return
    from celery.signals import setup_logging

    level = logging.getLevelName(loglevel.upper())
    setup_cli_logging(False, LogFormat.JSON, level if isinstance(level, int) else logging.WARNING)

    @setup_logging.connect(weak=False)
    def _ours(**_: object) -> None:  # a receiver here keeps Celery from configuring logging
        pass


def _heartbeat(url: str | None, node: str, queues: list[str], concurrency: int,
               interval_s: float) -> list[Any]:
    """Starts the worker's heartbeat (returns it), or says why there is none."""
    from service.db import Database
    from service.db.fleet import Identity
    from service.db.heartbeat import Heartbeat
    from service.db.session import DB_DOWN, SchemaOutOfDate

    if not url:
        say("[yellow]note:[/] no heartbeats: pass --db or set EVOFORGE_DB so `evoforge status` "
            "and /api/fleet see this worker")
        return []
    try:
        database = Database(url, migrate=False)
    except (SchemaOutOfDate, *DB_DOWN) as exc:
        say(f"[yellow]note:[/] no heartbeats: {str(exc).splitlines()[0]}")
        return []
    who = Identity("worker", node, tuple(queues), concurrency)
    return [Heartbeat(database, who, interval_s, fork_safe=True).start()]


def register(app: typer.Typer) -> None:
    """Adds the worker command to the evoforge CLI."""
    app.command("worker")(worker)
