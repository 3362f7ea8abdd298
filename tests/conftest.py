"""Shared fixtures: database URLs for real SQLite files and real, throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

REPO = Path(__file__).resolve().parents[1]
PG_ADMIN = os.environ.get("EVOFORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


def _pg_admin_dsn() -> str:
    return PG_ADMIN


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Returns the URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'evoforge.db'}"


def fresh_pg_database() -> Iterator[str]:
    """Yields the URL of a new PostgreSQL database and drops it afterwards."""
    name = f"evoforge_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(_pg_admin_dsn(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect 15 main start` or set EVOFORGE_TEST_PG")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(_pg_admin_dsn(), autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def pg_url() -> Iterator[str]:
    """Returns the URL of a fresh PostgreSQL database, dropped afterwards."""
    yield from fresh_pg_database()


@pytest.fixture(params=["sqlite", "postgres"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Returns a fresh database URL of each kind: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'evoforge.db'}"
    else:
        yield from fresh_pg_database()
