"""What every command shares: the consoles, the --db / --json / --verbose options, settings and the
database they name, logging, and expected errors turned into one line and exit code 1."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.errors import MarkupError
from rich.logging import RichHandler
from rich.text import Text

from service.config import ConfigError
from service.db import Database, SchemaOutOfDate
from service.db.status import RunStatusError
from service.evolution.report import InitialProgramFailed, RunBusy
from service.llm.base import LLMError, LLMUnavailable
from service.problems.load import ProblemError
from service.settings import Settings
from service.telemetry.logs import LogFormat, json_handler

out = Console(soft_wrap=True)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in "
                                               "$EVOFORGE_HOME, ./.evoforge).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON line of the results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO).")]
LogFormatOpt = Annotated[LogFormat, typer.Option(
    "--log-format", envvar="EVOFORGE_LOG_FORMAT", case_sensitive=False,
    help="rich: for a terminal; json: one JSON object a line (time, level, component, message, "
         "run_id / program_id / evaluation_id) for log collectors.")]
MetricsPortOpt = Annotated[int | None, typer.Option(
    "--metrics-port", envvar="EVOFORGE_METRICS_PORT", min=1, max=65535,
    help="Serve Prometheus metrics at http://0.0.0.0:PORT/metrics (default: none).")]
SAY = "evoforge.cli"  # the logger `say` writes to in JSON mode
_format = [LogFormat.RICH]
USER_ERRORS = (ProblemError, ConfigError, LookupError, SchemaOutOfDate, RunBusy,
               InitialProgramFailed, LLMError, LLMUnavailable, FileNotFoundError, RunStatusError)


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints one error line (a JSON record with --log-format json) and exits with code."""
    if json_logs():
        logging.getLogger(SAY).error(message)
    else:
        err.print(f"[bold red]error:[/] {message}", highlight=False)
    raise typer.Exit(code)


def friendly(fn: F) -> F:
    """Turns expected errors into one clear message and exit code 1 (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            fail(str(exc))
    return wrapper  # type: ignore[return-value]


def settings_for(db: str | None) -> Settings:
    """Returns the settings from the environment, with --db when given; bad ones raise
    ConfigError naming the variable (or the models file) and the fix."""
    try:
        settings = Settings()
    except ValidationError as exc:
        raise ConfigError("; ".join(
            (f"EVOFORGE_{str(e['loc'][0]).upper()}: " if e["loc"] else "")
            + e["msg"].removeprefix("Value error, ") for e in exc.errors())) from None
    if db:
        settings.db = db
    return settings


def open_database(db: str | None) -> tuple[Database, Settings]:
    """Returns the database --db names (or the settings' default) and the settings."""
    settings = settings_for(db)
    return Database(settings.database_url()), settings


def setup_logging(verbose: bool, log_format: LogFormat = LogFormat.RICH,
                  level: int | None = None) -> None:
    """Logs to stderr, through Rich or as one JSON object a line: INFO with --verbose, else
    warnings only (level, when given, wins); in JSON, what `say` announces is logged too."""
    _format[0] = LogFormat(log_format)
    handler = json_handler(sys.stderr) if _format[0] is LogFormat.JSON else \
        RichHandler(console=err, show_path=False)
    logging.basicConfig(level=level if level is not None else
                        logging.INFO if verbose else logging.WARNING,
                        format="%(message)s", handlers=[handler])
    if _format[0] is LogFormat.JSON:
        logging.getLogger(SAY).setLevel(logging.INFO)
        logging.captureWarnings(True)  # a Python warning is a record too, not a bare line


def json_logs() -> bool:
    """Returns True when this command logs JSON lines (--log-format json)."""
    return _format[0] is LogFormat.JSON


def say(message: str) -> None:
    """Announces a line on stderr: Rich markup on a terminal, an INFO record in JSON mode (so
    stderr stays one JSON object a line)."""
    if json_logs():
        try:
            plain = Text.from_markup(message).plain
        except MarkupError:  # brackets in an error text, not markup
            plain = message
        logging.getLogger(SAY).info(plain)
    else:
        err.print(message, highlight=False)


def put(d: dict[str, Any], section: str, key: str, value: Any) -> None:
    """Sets d[section][key] = value when value is given (a run-config override)."""
    if value is not None:
        d.setdefault(section, {})[key] = value
