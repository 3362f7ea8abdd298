"""Shared fixtures: database URLs for real SQLite files and real, throwaway PostgreSQL databases."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest

from service.llm.models import default_model_path

REPO = Path(__file__).resolve().parents[1]
SERVER_CTX = 2048
PG_ADMIN = os.environ.get("EVOFORGE_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """Returns the URL of a fresh SQLite file."""
    return f"sqlite:///{tmp_path / 'evoforge.db'}"


def fresh_pg_database() -> Iterator[str]:
    """Yields the URL of a new PostgreSQL database and drops it afterwards."""
    name = f"evoforge_test_{uuid.uuid4().hex[:10]}"
    try:
        admin = psycopg.connect(PG_ADMIN, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {PG_ADMIN} ({exc}); start it with "
                    "`pg_ctlcluster --skip-systemctl-redirect 15 main start` "
                    "or set EVOFORGE_TEST_PG")
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    base = PG_ADMIN.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
    yield f"{base}/{name}"
    with psycopg.connect(PG_ADMIN, autocommit=True) as admin:
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


def free_port() -> int:
    """Returns a TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until_healthy(client: httpx.Client, log: Path, timeout: float = 60) -> None:
    """Waits until the API behind client answers /api/health; fails with the log's tail."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if client.get("/api/health").status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


@pytest.fixture(scope="session")
def llama_server_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Returns the /v1 URL of a real OpenAI-compatible server (llama.cpp's, on SmolLM2)."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama_server") / "server.log"
    log = log_path.open("w")  # a file, not a pipe: the server's chatter must never block it
    proc = subprocess.Popen(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(default_model_path()),
         "--host", "127.0.0.1", "--port", str(port), "--n_ctx", str(SERVER_CTX)],
        stdout=log, stderr=subprocess.STDOUT, env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"})
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 90
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited ({proc.returncode}): "
                            f"{log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/models", timeout=2).is_success:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("llama_cpp.server did not answer /v1/models within 90 s")
            time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Moves tests marked runs_last (they restart shared services) to the end of the session."""
    items.sort(key=lambda item: item.get_closest_marker("runs_last") is not None)
