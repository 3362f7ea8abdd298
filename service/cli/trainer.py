"""`evoforge trainer`: the out-of-process GRPO + LoRA trainer of runs with rl.trainer "external"."""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from service.cli.common import LogFormatOpt, fail, say, settings_for, setup_logging
from service.rl.rounds import LEASE_S
from service.telemetry.logs import LogFormat

log = logging.getLogger("evoforge.trainer")


class TrainerSetupError(ValueError):
    """Bad options, runs or database: the message names the problem and the fix."""


def trainer(
    db: Annotated[str | None, typer.Option(help="Database URL (default $EVOFORGE_DB, else the "
                                           "SQLite file in $EVOFORGE_HOME).")] = None,
    llm_url: Annotated[str | None, typer.Option(help="vLLM server (OpenAI-compatible base URL, "
                                                "e.g. http://vllm:8000/v1): each new adapter is "
                                                "loaded into it through runtime LoRA.")] = None,
    adapters: Annotated[Path | None, typer.Option(help="Folder adapters are written under "
                                                  "(RUN/vN/); the LLM server must see the same "
                                                  "path. Default $EVOFORGE_HOME/adapters.")] = None,
    runs: Annotated[str | None, typer.Option(help="Only these run ids, comma-separated "
                                             "(default: every run with rl.trainer = external).")]
    = None,
    poll: Annotated[float, typer.Option(help="Seconds between looks for due rounds.")] = 5.0,
    once: Annotated[bool, typer.Option("--once", help="Train the rounds due now, then exit "
                                       "(exit 1 if one failed).")] = False,
    lease: Annotated[float, typer.Option(help="Seconds a claim holds without renewal (renewed "
                                         "every quarter of it): how soon a dead trainer's "
                                         "round is given up.")] = LEASE_S,
    log_format: LogFormatOpt = LogFormat.RICH,
) -> None:
    """Claim due RL rounds of external-trainer runs, train them (GRPO + LoRA), publish adapters."""
    from service.rl.external import Trainer

    setup_logging(True, log_format)
    for chatty in ("alembic", "httpx"):  # migrations and HTTP requests: not the trainer's news
        logging.getLogger(chatty).setLevel(logging.WARNING)
    try:
        database, settings, run_ids = _setup(db, runs)
        folder = _adapters_folder(adapters, settings)
    except TrainerSetupError as exc:
        fail(str(exc))
    if lease < 1 or poll <= 0:
        fail("--lease must be at least 1 s and --poll above 0")
    worker = Trainer(database, settings, folder, llm_url=llm_url, run_ids=run_ids,
                     lease_s=lease)
    _say_where(worker, poll, once)
    signal.signal(signal.SIGTERM, _interrupt)  # `docker stop`: close the round as failed
    try:
        outcomes = worker.poll_once() if once else worker.serve(poll, threading.Event())
    except KeyboardInterrupt:
        say("trainer stopped")
        raise typer.Exit(130) from None
    finally:
        worker.close()
    failed = [o for o in outcomes if o.status != "done"]
    if once:
        say(f"trained {len(outcomes) - len(failed)} round(s), {len(failed)} failed or lost"
            if outcomes else "no round was due")
    raise typer.Exit(1 if failed else 0)


def _setup(db: str | None, runs: str | None) -> tuple[Any, Any, list[int] | None]:
    """Returns (database, settings, run ids) or raises TrainerSetupError with the fix."""
    from sqlalchemy.exc import OperationalError

    from service.db import Database, SchemaOutOfDate

    settings = settings_for(db)
    url = settings.database_url()
    try:
        database = Database(url)
    except SchemaOutOfDate as exc:
        raise TrainerSetupError(str(exc)) from None
    except OperationalError as exc:
        raise TrainerSetupError(f"database unreachable at {url}: "
                                f"{str(exc).splitlines()[0]}; start it or fix --db") from None
    run_ids = _run_ids(runs)
    for run_id in run_ids or []:
        _check_run(database, run_id)
    return database, settings, run_ids


def _run_ids(runs: str | None) -> list[int] | None:
    if not runs:
        return None
    try:
        return [int(r) for r in runs.split(",") if r.strip()]
    except ValueError:
        raise TrainerSetupError(f"--runs {runs!r}: give run ids separated by commas, e.g. "
                                "--runs 1,2") from None


def _check_run(database: Any, run_id: int) -> None:
    """Raises TrainerSetupError unless the run exists and is trained externally."""
    from service.config import RunConfig
    from service.db.models import RunRow

    with database.session() as s:
        run = s.get(RunRow, run_id)
        config = None if run is None else run.config
    if config is None:
        raise TrainerSetupError(f"no run {run_id} in {database.url}; `evoforge runs list` "
                                "shows the runs")
    rl = RunConfig.model_validate(config).rl
    if not rl.enabled or rl.trainer != "external":
        raise TrainerSetupError(f"run {run_id} has rl.enabled = {rl.enabled}, rl.trainer = "
                                f"{rl.trainer!r}: its controller does not wait for a trainer; "
                                "create the run with [rl] enabled = true, trainer = \"external\"")


def _adapters_folder(adapters: Path | None, settings: Any) -> Path:
    from service.rl.grpo import adapters_home

    folder = (adapters or adapters_home(settings)).expanduser().resolve()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TrainerSetupError(f"--adapters {folder}: cannot create it ({exc})") from None
    return folder


def _say_where(worker: Any, poll: float, once: bool) -> None:
    """Prints what the trainer watches and where adapters go; warns if the LLM server is down."""
    import httpx

    from service.rl.external import v1_url

    scope = "every external-trainer run" if not worker.run_ids else \
        "runs " + ", ".join(map(str, worker.run_ids))
    say(f"trainer {worker.owner} watching {scope} in {worker.db.url}"
        f"{'' if once else f' every {poll:g} s'}; adapters under {worker.adapters_dir}")
    if worker.llm_url:
        try:
            httpx.get(f"{v1_url(worker.llm_url)}/models", timeout=5).raise_for_status()
            say(f"new adapters are loaded into {worker.llm_url} (runtime LoRA)")
        except httpx.HTTPError as exc:
            say(f"[yellow]warning:[/] LLM server at {worker.llm_url} does not answer "
                f"({exc}); adapters are recorded and loaded once it does")


def _interrupt(*_: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    """Adds `trainer` to the evoforge command."""
    app.command("trainer")(trainer)
