"""No connection reaches an address named in a refused config: a real `evoforge serve` (API and
its embedded controller) refuses each config that names a listener, drives the accepted runs, and
the listener never sees a connection."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from service.db import upgrade
from tests.conftest import free_port, wait_until_healthy
from tests.service.api.conftest import tiny_files
from tests.service.engine_helpers import TOML, returns

EVOFORGE = str(Path(sys.executable).parent / "evoforge")


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """Returns a TCP listener on a free port of 127.0.0.1 that nothing should ever reach."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock


@pytest.fixture
def served(pg_url: str, tmp_path: Path) -> Iterator[httpx.Client]:
    """Returns a client with a write token of a real `evoforge serve` whose operator names one
    model, 'answers' (scripted)."""
    upgrade(pg_url)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 8, 10)]))
    models = tmp_path / "models.toml"
    models.write_text(f'[models.answers]\nbackend = "scripted"\nmodel = "{answers}"\n')
    env = {**os.environ, "EVOFORGE_HOME": str(tmp_path / "home"),
           "EVOFORGE_MODELS_FILE": str(models)}
    made = subprocess.run([EVOFORGE, "tokens", "create", "--name", "t", "--db", pg_url, "--json"],
                          capture_output=True, text=True, env=env, check=True)
    secret = json.loads(made.stdout.strip().splitlines()[-1])["token"]
    port = free_port()
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        proc = subprocess.Popen([EVOFORGE, "serve", "--db", pg_url, "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {secret}"})
    try:
        wait_until_healthy(client, log)
        yield client
    finally:
        client.close()
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)


def _wait(done: object, timeout: float, log: Path) -> None:
    deadline = time.monotonic() + timeout
    while not done():  # type: ignore[operator]
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)


def _refused(r: httpx.Response) -> None:
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] in ("invalid_config", "invalid_problem"), r.text


def test_no_connection_reaches_a_listener_named_in_a_refused_config(
        served: httpx.Client, listener: socket.socket) -> None:
    port = listener.getsockname()[1]
    http, amqp = f"http://127.0.0.1:{port}/v1", f"amqp://guest:guest@127.0.0.1:{port}//"
    pid = served.post("/api/problems", json={"files": tiny_files()}).json()["id"]
    for config in ({"llm": {"backend": "openai", "url": http}},
                   {"llm": {"models": [{"use": "answers"},
                                       {"name": "x", "backend": "openai", "url": http}]}},
                   {"evaluation": {"executor": "celery", "broker": amqp}},
                   {"evaluation": {"broker": f"redis://127.0.0.1:{port}/0"}}):
        r = served.post("/api/runs", json={"problem_id": pid, "config": config})
        _refused(r)
        assert "'answers'" in r.json()["error"]["message"] or "broker" in r.text
    steering = {**tiny_files(), "problem.toml": TOML + f'\n[run.llm]\nbackend = "openai"\n'
                f'url = "{http}"\n'}
    _refused(served.post("/api/problems", json={"files": steering}))

    run = served.post("/api/runs", json={"problem_id": pid, "config": {
        "llm": {"use": "answers"}, "budget": {"iterations": 3}}}).json()
    _wait(lambda: served.get(f"/api/runs/{run['id']}").json()["status"] == "completed", 120,
          Path(os.devnull))
    assert served.get(f"/api/runs/{run['id']}").json()["best_score"] == 0.0  # the named model
    for changes in ({"llm": {"url": http}}, {"evaluation": {"broker": amqp}}):
        _refused(served.post(f"/api/runs/{run['id']}/resume", json={"config": changes}))
    time.sleep(2.5)  # the embedded controller polls every second: give it time to misbehave
    listener.settimeout(0.5)
    with pytest.raises(TimeoutError):  # noqa: PT012 - a connection that got through is named
        peer = listener.accept()
        pytest.fail(f"a connection reached the refused address from {peer[1]}")
