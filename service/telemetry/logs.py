"""Log records that say which run, program and evaluation they concern, and the JSON line format.

log_context(run_id=...) sets context variables that asyncio tasks and threads started inside
inherit; ContextFilter copies them onto every record a handler sees (an `extra=` value wins), and
JsonFormatter writes one JSON object a line: time, level, component (the logger's name), message,
the ids that apply, other `extra=` fields, and the traceback when there is one.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, TextIO

IDS = ("run_id", "program_id", "evaluation_id")
_VARS: dict[str, ContextVar[int | None]] = {k: ContextVar(f"evoforge_{k}", default=None)
                                            for k in IDS}
# what every LogRecord has: anything else on a record came through `extra=`
_STANDARD = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName", *IDS}


class LogFormat(StrEnum):
    """How long-running commands write their logs."""

    RICH = "rich"  # for people at a terminal (the default)
    JSON = "json"  # one JSON object a line, for log collectors


@contextmanager
def log_context(**ids: int | None) -> Iterator[None]:
    """Makes records logged inside (and in tasks and threads started inside) carry these ids."""
    unknown = set(ids) - set(IDS)
    if unknown:
        raise ValueError(f"log_context takes {', '.join(IDS)}; not {', '.join(sorted(unknown))}")
    tokens = [(_VARS[k], _VARS[k].set(v)) for k, v in ids.items()]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def current_ids() -> dict[str, int]:
    """Returns the ids the current context carries."""
    return {k: v for k, var in _VARS.items() if (v := var.get()) is not None}


class ContextFilter(logging.Filter):
    """Puts the context's ids on each record (a value given with `extra=` is kept)."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Returns True (every record passes), with the ids set."""
        for key, value in current_ids().items():
            if getattr(record, key, None) is None:
                setattr(record, key, value)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, component, message, ids, extras, exception."""

    def format(self, record: logging.LogRecord) -> str:
        """Returns the record as one line of JSON."""
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname, "component": record.name, "message": record.getMessage(),
            "pid": record.process}
        for key in IDS:
            if (value := getattr(record, key, None)) is not None:
                out[key] = value
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            out["exception"] = record.exc_text
        return json.dumps(out, default=str, ensure_ascii=False)


def json_handler(stream: TextIO) -> logging.Handler:
    """Returns a handler writing JSON lines to stream, with the context's ids."""
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    handler.addFilter(ContextFilter())
    return handler
