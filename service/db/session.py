"""Database engines and sessions; the schema comes from Alembic migrations (migrations/ in the
checkout, service/db/migrations in a wheel: setup.py packs the one folder)."""

from __future__ import annotations

import fcntl
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, DisconnectionError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

_HERE = Path(__file__).resolve().parent
MIGRATIONS = next((p for p in (_HERE / "migrations", _HERE.parents[1] / "migrations")
                   if (p / "env.py").is_file()), _HERE / "migrations")  # a wheel, else a checkout
DB_DOWN = (OperationalError, DBAPIError)  # the database is unreachable or restarting: retry later
PING_AFTER_IDLE_S = 1.0  # a pooled connection idle this long is pinged before it is handed out


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
    engine = create_engine(url, pool_size=5, max_overflow=5)
    _ping_when_idle(engine)
    return engine


def _ping_when_idle(engine: Engine) -> None:
    """Pings a pooled connection before it is handed out only when it has been idle for
    PING_AFTER_IDLE_S: a connection the server or a proxy dropped while idle is replaced before
    use (as pool_pre_ping does), while a busy loop does not pay a round trip per transaction (a
    controller iteration is two). A connection that breaks while in use raises DB_DOWN, and
    SQLAlchemy then replaces every connection of the pool."""

    @event.listens_for(engine, "checkin")
    def _idle_from(_dbapi_conn, record) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping(dbapi_conn, record, _proxy) -> None:
        idle_since = record.info.get("idle_since")
        if idle_since is None or time.monotonic() - idle_since < PING_AFTER_IDLE_S:
            return  # just connected, or used a moment ago
        try:
            alive = engine.dialect.do_ping(dbapi_conn)
        except engine.dialect.loaded_dbapi.Error as exc:
            raise DisconnectionError(f"pooled connection is dead: {exc}") from exc
        if not alive:
            raise DisconnectionError("pooled connection is dead")


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

    @contextmanager
    def transaction(self) -> Iterator[Connection]:
        """Yields a connection in a transaction that commits on success and rolls back on error:
        for Core statements that need no ORM session (no identity map, no flush)."""
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def autocommit(self) -> Iterator[Connection]:
        """Yields a connection in autocommit mode: each statement is its own transaction, one
        round trip (for a write that is one statement, such as the ledger's folded ones)."""
        with self.engine.connect() as conn:
            yield conn.execution_options(isolation_level="AUTOCOMMIT")

    def close(self) -> None:
        """Disposes of the engine's connections."""
        self.engine.dispose()
