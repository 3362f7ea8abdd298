"""What every command shares: the consoles, the --db / --json / --verbose options, settings and the
database they name, logging, and expected errors turned into one line and exit code 1."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.logging import RichHandler

from service.config import ConfigError
from service.db import Database, SchemaOutOfDate
from service.db.status import RunStatusError
from service.evolution.engine import InitialProgramFailed, RunBusy
from service.llm.base import LLMError, LLMUnavailable
from service.problems.load import ProblemError
from service.settings import Settings

out = Console(soft_wrap=True)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in "
                                               "$EVOFORGE_HOME, ./.evoforge).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON line of the results.")]
VerboseOpt = Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens (INFO).")]
USER_ERRORS = (ProblemError, ConfigError, LookupError, SchemaOutOfDate, RunBusy,
               InitialProgramFailed, LLMError, LLMUnavailable, FileNotFoundError, RunStatusError)


def fail(message: str, code: int = 1) -> NoReturn:
    """Prints one error line and exits with code."""
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


def setup_logging(verbose: bool) -> None:
    """Logs to stderr through Rich: INFO with --verbose, else warnings only."""
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)])


def put(d: dict[str, Any], section: str, key: str, value: Any) -> None:
    """Sets d[section][key] = value when value is given (a run-config override)."""
    if value is not None:
        d.setdefault(section, {})[key] = value
