"""`evoforge worker`: a Celery worker that scores candidates in the sandbox and writes the results."""

from __future__ import annotations

import logging
import os
import socket
from typing import Annotated

import typer

from service.cli.common import err, fail, settings_for

log = logging.getLogger("evoforge.worker")


def worker(
    queues: Annotated[str, typer.Option(help="Capabilities this worker serves, comma-separated "
                                        "(Celery queues), e.g. cpu or cpu,gpu.")] = "cpu",
    concurrency: Annotated[int, typer.Option(help="Evaluations at once (worker processes).")] = 2,
    broker: Annotated[str | None, typer.Option(help="Broker URL (default $EVOFORGE_BROKER, "
                                               "else RabbitMQ on 127.0.0.1).")] = None,
    db: Annotated[str | None, typer.Option(help="How this worker reaches the database (default: the "
                                           "URL each task carries from its controller).")] = None,
    name: Annotated[str | None, typer.Option(help="Worker node name (default evoforge-PID@host).")]
    = None,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "WARNING",
) -> None:
    """Start a Celery worker that evaluates candidates in the sandbox and writes the results."""
    from celery.signals import worker_ready

    from evaluators.isolation.layers import available_layers, become_subreaper
    from service.execution.celery_tasks import configure

    if concurrency < 1:
        fail("--concurrency must be at least 1")
    wanted = [q.strip() for q in queues.split(",") if q.strip()]
    if not wanted:
        fail("--queues is empty; name at least one, e.g. --queues cpu")
    url = broker or settings_for(None).broker
    if db:
        os.environ["EVOFORGE_WORKER_DB"] = db
    become_subreaper()  # sandboxed processes orphaned by a candidate are reaped by this worker
    for layer in available_layers():
        err.print(f"sandbox {layer}", highlight=False)
    err.print(f"worker serving {', '.join(wanted)} with {concurrency} processes on {url}",
              highlight=False)
    app = configure(url)
    node = name or f"evoforge-{os.getpid()}@{socket.gethostname()}"

    @worker_ready.connect(weak=False)
    def _ready(**_: object) -> None:
        err.print(f"evoforge worker {node} ready", highlight=False)

    app.worker_main(argv=["worker", "--queues", ",".join(wanted), "--concurrency",
                          str(concurrency), "--pool", "prefork", "--hostname", node,
                          "--loglevel", loglevel, "--without-gossip", "--without-mingle"])


def register(app: typer.Typer) -> None:
    """Adds the worker command to the evoforge CLI."""
    app.command("worker")(worker)
