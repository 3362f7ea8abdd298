"""Throwaway databases for the cost benchmarks: a temporary SQLite file or a new PostgreSQL one."""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from service.db import upgrade

PG_ADMIN = "postgresql://postgres@127.0.0.1:5432/test"  # the default --pg-url of the benchmarks


@contextmanager
def postgres_database(admin_url: str, prefix: str = "evoforge_bench",
                      hint: str = "start it or pass another admin URL") -> Iterator[str]:
    """Yields the SQLAlchemy URL of a new, migrated PostgreSQL database, dropped afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(admin_url, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise SystemExit(f"PostgreSQL is not reachable at {admin_url} ({exc}); {hint}") from None
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(admin_url).set(drivername="postgresql+psycopg", database=name)
    try:
        rendered = url.render_as_string(hide_password=False)
        upgrade(rendered)
        yield rendered
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextmanager
def backend_url(backend: str, pg_url: str) -> Iterator[str]:
    """Yields a fresh database URL: a temporary SQLite file, or a new PostgreSQL database."""
    if backend == "postgres":
        with postgres_database(pg_url, hint="start it, give --pg-url, or leave it out with "
                               "--backends sqlite") as url:
            yield url
        return
    with tempfile.TemporaryDirectory() as tmp:
        yield f"sqlite:///{Path(tmp) / 'evoforge.db'}"
