"""Readiness names what is missing (a database behind a closed port, an old schema, a broker that
does not answer); /metrics is the Prometheus format and counts local evaluations as the rows
say; the fleet is for admins."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from service.api.app import create_app
from service.db import Database, upgrade
from service.db.models import EvaluationRow
from service.db.session import alembic_config
from service.settings import Settings
from tests.conftest import free_port
from tests.service.api.conftest import Api


class Forwarder:
    """A local TCP port forwarding to another until closed; then connecting is refused."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.open: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            self.open += [client, server]
            for a, b in ((client, server), (server, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(a: socket.socket, b: socket.socket) -> None:
        try:
            while data := a.recv(65536):
                b.sendall(data)
        except OSError:
            pass
        finally:
            for s in (a, b):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        """Closes the port and every connection through it."""
        for s in (self.listener, *self.open):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)  # wakes the threads blocked in accept and recv
            s.close()


@pytest.fixture
def proxied(pg_url: str) -> Iterator[tuple[Forwarder, str]]:
    """Returns a forwarder to the test's PostgreSQL database and the URL through it."""
    upgrade(pg_url)
    url = make_url(pg_url)
    forward = Forwarder((url.host or "127.0.0.1", url.port or 5432))
    yield forward, url.set(port=forward.port).render_as_string(hide_password=False)
    forward.close()


def test_ready_checks_the_database_and_its_schema(api: Api) -> None:
    r = api.client.get("/api/ready")
    assert r.status_code == 200, r.text
    checks = r.json()["checks"]
    assert set(checks) == {"database", "schema"} and checks["schema"].startswith("at 0")


def test_ready_names_a_database_behind_a_closed_port(proxied: tuple[Forwarder, str],
                                                      tmp_path: Path) -> None:
    forward, url = proxied
    db = Database(url)
    client = TestClient(create_app(db, Settings(home=tmp_path, db=url)))
    assert client.get("/api/ready").status_code == 200
    forward.close()  # the database's port is closed now
    r = client.get("/api/ready")
    assert r.status_code == 503, r.text
    error = r.json()["error"]
    assert error["code"] == "not_ready" and [d["where"] for d in error["details"]] == ["database"]
    assert f":{forward.port}/" in error["message"] and "unreachable" in error["message"]
    assert "EVOFORGE_DB" in error["message"]
    metrics = client.get("/metrics")
    assert metrics.status_code == 200 and "evoforge_database_up 0.0" in metrics.text
    db.close()


def test_ready_names_a_schema_behind_the_code_and_the_command_that_fixes_it(
        pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    db = Database(pg_url)
    client = TestClient(create_app(db, Settings(home=tmp_path, db=pg_url)))
    command.downgrade(alembic_config(pg_url), "-1")
    r = client.get("/api/ready")
    assert r.status_code == 503
    details = r.json()["error"]["details"]
    assert [d["where"] for d in details] == ["schema"]
    assert "evoforge db upgrade --db" in details[0]["message"]
    db.close()


def test_ready_names_a_broker_that_does_not_answer(api: Api) -> None:
    port = free_port()
    app = create_app(api.db, Settings(home=api.tmp, db=api.db.url,
                                      broker=f"amqp://guest:secret@127.0.0.1:{port}//"))
    r = TestClient(app).get("/api/ready")
    assert r.status_code == 503
    detail = r.json()["error"]["details"]
    assert [d["where"] for d in detail] == ["broker"]
    assert f"127.0.0.1:{port}" in detail[0]["message"] and "secret" not in detail[0]["message"]


def _local_evaluations(text: str) -> dict[tuple[str, str], float]:
    out: dict[tuple[str, str], float] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "evoforge_evaluations_total" and s.labels["queue"] == "local":
                out[(s.labels["status"], s.labels["failure_kind"])] = s.value
    return out


def test_metrics_count_the_local_pools_evaluations_as_the_rows_say(api: Api) -> None:
    before = _local_evaluations(api.client.get("/metrics").text)
    run_id = api.run(iterations=6)
    api.drive(run_id)  # in this process, as the embedded controller would
    after = api.client.get("/metrics")
    assert after.headers["content-type"].startswith("text/plain; version=0.0.4")
    with api.db.session() as s:
        rows = s.execute(select(EvaluationRow.status, EvaluationRow.error_kind, func.count())
                         .where(EvaluationRow.run_id == run_id)
                         .group_by(EvaluationRow.status, EvaluationRow.error_kind)).all()
    moved = {k: v - before.get(k, 0.0) for k, v in _local_evaluations(after.text).items()}
    assert {k: v for k, v in moved.items() if v} == {(st, kind or ""): n for st, kind, n in rows}
    assert f'evoforge_run_iterations_total{{model="answers",run_id="{run_id}"}} 6.0' in after.text


def test_the_fleet_is_for_admins(api: Api) -> None:
    assert api.client.get("/api/fleet", headers=api.h("alice")).status_code == 403
    r = api.client.get("/api/fleet", headers=api.h("admin"))
    assert r.status_code == 200
    assert [q["name"] for q in r.json()["queues"]] == ["cpu", "gpu"]  # the allowed queues
