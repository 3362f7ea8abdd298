"""Service commands: `evoforge serve`, `evoforge controller` and the API tokens' commands,
`evoforge tokens create|list|revoke`."""

from __future__ import annotations

import asyncio
import json
import signal
import threading
from typing import Annotated

import typer
from rich.table import Table

from service.api.auth_tokens import SCOPES, create_token, list_tokens, revoke_token
from service.cli.common import (
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    MetricsPortOpt,
    VerboseOpt,
    err,
    friendly,
    json_logs,
    open_database,
    out,
    say,
    setup_logging,
)
from service.db import Database
from service.db.session import shown
from service.settings import Settings
from service.telemetry import metrics
from service.telemetry.logs import LogFormat

tokens_app = typer.Typer(help="API tokens (stored hashed; the secret is shown once).",
                         no_args_is_help=True)


def serve(host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
          port: Annotated[int, typer.Option(help="TCP port.")] = 8000,
          db: DbOpt = None,
          controller: Annotated[bool, typer.Option(
              "--controller/--no-controller",
              help="Also drive runs in this process (one embedded controller).")] = True,
          max_runs: Annotated[int, typer.Option(help="Runs the embedded controller drives at "
                                                     "once.")] = 4,
          verbose: VerboseOpt = False,
          log_format: LogFormatOpt = LogFormat.RICH) -> None:
    """Serve the REST API (OpenAPI at /docs), /metrics (Prometheus) and the web UI; refuses an
    out-of-date schema."""
    import uvicorn

    from service.api.app import create_app

    setup_logging(verbose, log_format)
    database, settings = open_database(db)
    app = create_app(database, settings)
    stop = threading.Event()
    thread = None
    if controller:
        thread = threading.Thread(target=_controller_thread, name="controller", daemon=True,
                                  args=(database, settings, max_runs, stop))
        thread.start()
    say(f"evoforge API on http://{host}:{port}/api (docs at /docs, metrics at /metrics) → "
        f"{shown(settings.database_url())}" + (" with an embedded controller" if controller
                                               else ""))
    try:  # in JSON, uvicorn's loggers go through ours (its own config would print plain lines)
        uvicorn.run(app, host=host, port=port, log_level="info" if verbose else "warning",
                    **({"log_config": None} if json_logs() else {}))
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)


def _controller_thread(database: Database, settings: Settings, max_runs: int,
                       stop: threading.Event) -> None:
    from service.controller import run_controller

    async def main() -> None:
        event = asyncio.Event()
        loop = asyncio.get_running_loop()
        threading.Thread(target=lambda: (stop.wait(), loop.call_soon_threadsafe(event.set)),
                         daemon=True).start()
        await run_controller(database, settings, max_runs=max_runs, stop=event)

    asyncio.run(main())


def controller(db: DbOpt = None,
               max_runs: Annotated[int, typer.Option(help="Runs driven at once.")] = 4,
               poll: Annotated[float, typer.Option(help="Seconds between polls for runs and "
                                                        "pause/stop requests.")] = 1.0,
               metrics_port: MetricsPortOpt = None,
               verbose: VerboseOpt = False,
               log_format: LogFormatOpt = LogFormat.RICH) -> None:
    """Drive active runs: claim queued or orphaned runs through their lease; stop on SIGTERM."""
    from service.controller import run_controller

    setup_logging(verbose, log_format)
    database, settings = open_database(db)
    if metrics_port:
        metrics.enable()
        metrics.serve(metrics_port)
    say(f"controller on {shown(settings.database_url())} (up to {max_runs} runs)"
        + (f"; metrics on :{metrics_port}/metrics" if metrics_port else ""))

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_controller(database, settings, max_runs=max_runs, poll_s=poll, stop=stop)

    asyncio.run(main())


@tokens_app.command("create")
@friendly
def tokens_create(name: Annotated[str, typer.Option(help="Who the token is for.")],
                  scope: Annotated[str, typer.Option(help=" | ".join(SCOPES))] = "write",
                  max_runs: Annotated[int | None, typer.Option(
                      help="Quota: active (queued or running) runs at once.")] = None,
                  of: Annotated[int | None, typer.Option(
                      "--of", help="Share this token's problems and runs (e.g. a read token "
                      "for a writer's dashboard).")] = None,
                  db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """Create an API token and print its secret (shown only this once)."""
    database, _ = open_database(db)
    with database.session() as s:
        row, secret = create_token(s, name, scope, max_runs, of)
    if json_out:
        print(json.dumps({"id": row.id, "name": row.name, "scope": row.scope, "token": secret}))
        return
    err.print(f"token {row.id} '{row.name}' ({row.scope}); keep the secret, it is not stored:")
    print(secret)


@tokens_app.command("list")
@friendly
def tokens_list(db: DbOpt = None, json_out: JsonOpt = False) -> None:
    """List tokens (ids, names, scopes, quotas; never secrets)."""
    database, _ = open_database(db)
    with database.session() as s:
        rows = list_tokens(s)
    if json_out:
        for r in rows:
            print(json.dumps({"id": r.id, "name": r.name, "scope": r.scope, "prefix": r.prefix,
                              "max_runs": r.max_active_runs, "of": r.acts_for,
                              "revoked": r.revoked_at is not None}))
        return
    table = Table("id", "name", "scope", "starts with", "max runs", "of", "last used", "revoked")
    for r in rows:
        table.add_row(str(r.id), r.name, r.scope, r.prefix + "…", str(r.max_active_runs or "-"),
                      str(r.acts_for or "-"),
                      r.last_used_at.strftime("%Y-%m-%d %H:%M") if r.last_used_at else "-",
                      "yes" if r.revoked_at else "")
    out.print(table)


@tokens_app.command("revoke")
@friendly
def tokens_revoke(token_id: int, db: DbOpt = None) -> None:
    """Revoke a token: requests with it are refused from now on."""
    database, _ = open_database(db)
    with database.session() as s:
        row = revoke_token(s, token_id)
    err.print(f"token {row.id} '{row.name}' revoked")


def register(app: typer.Typer) -> None:
    """Adds serve, controller and tokens to the evoforge command."""
    app.command()(friendly(serve))
    app.command()(friendly(controller))
    app.add_typer(tokens_app, name="tokens")
