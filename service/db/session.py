"""Database engines and sessions; the schema comes from Alembic migrations (migrations/ in the
checkout, service/db/migrations in a wheel: setup.py packs the one folder)."""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

_HERE = Path(__file__).resolve().parent
MIGRATIONS = next((p for p in (_HERE / "migrations", _HERE.parents[1] / "migrations")
                   if (p / "env.py").is_file()), _HERE / "migrations")  # a wheel, else a checkout
DB_DOWN = (OperationalError, DBAPIError)  # the database is unreachable or restarting: retry later


def shown(url: str) -> str:
    """Returns a database or broker URL with its password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not an SQLAlchemy-style URL: show its scheme only
        return url.split("://", 1)[0] + "://…"


class SchemaOutOfDate(RuntimeError):
    """The database schema is older than the code; the message says what to run."""


def make_engine(url: str) -> Engine:
    """Returns an Engine for url; SQLite gets WAL, a busy timeout and foreign keys."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=5)


def alembic_config(url: str) -> Config:
    """Returns an Alembic Config pointing at migrations/ and the given database."""
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> None:
    """Applies Alembic migrations up to revision."""
    command.upgrade(alembic_config(url), revision)


def schema_state(engine: Engine) -> tuple[str | None, str]:
    """Returns (current revision of the database, head revision of the code)."""
    head = ScriptDirectory.from_config(alembic_config(str(engine.url))).get_current_head()
    with engine.connect() as conn:
        current = MigrationContext.configure(conn).get_current_revision()
    return current, head or ""


def ensure_schema(engine: Engine, url: str, auto: bool) -> None:
    """Migrates when auto (the embedded SQLite file); else raises SchemaOutOfDate with the fix."""
    current, head = schema_state(engine)
    if current == head:
        return
    if auto:
        with _migration_lock(url):
            if schema_state(engine)[0] != head:  # another process may have just migrated
                upgrade(url)
        return
    raise SchemaOutOfDate(f"database schema is at {current or 'empty'}, the code needs {head}: "
                          f"run `evoforge db upgrade --db {make_url(url).render_as_string()}`")


@contextmanager
def _migration_lock(url: str) -> Iterator[None]:
    """Serialises automatic migrations of one SQLite file across processes."""
    path = make_url(url).database
    if not path or path == ":memory:":
        yield
        return
    with open(f"{path}.migrate.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


class Database:
    """An engine plus a session factory for one database URL."""

    def __init__(self, url: str, *, migrate: bool | None = None) -> None:
        self.url = url
        self.engine = make_engine(url)
        auto = migrate if migrate is not None else make_url(url).get_backend_name() == "sqlite"
        ensure_schema(self.engine, url, auto)
        self.sessions = sessionmaker(self.engine, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """Yields a session that commits on success and rolls back on error."""
        with self.sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    def close(self) -> None:
        """Disposes of the engine's connections."""
        self.engine.dispose()
