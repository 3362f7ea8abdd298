"""`evoforge serve` as a real process: schema check, then API + embedded controller end to end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import httpx

from service.db import upgrade
from tests.conftest import free_port, wait_until_healthy
from tests.service.api.conftest import tiny_files
from tests.service.engine_helpers import returns

EVOFORGE = str(Path(sys.executable).parent / "evoforge")


def test_serve_refuses_an_out_of_date_schema(pg_url: str) -> None:
    r = subprocess.run([EVOFORGE, "serve", "--db", pg_url], capture_output=True, text=True,
                       check=False, timeout=60)
    assert r.returncode == 1 and "evoforge db upgrade --db" in " ".join(r.stderr.split())


def test_serve_runs_a_submitted_problem_to_completion(pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 8, 10)]))
    models = tmp_path / "models.toml"  # the operator names the one model tenants may use
    models.write_text(f'[models.answers]\nbackend = "scripted"\nmodel = "{answers}"\n')
    env = {**os.environ, "EVOFORGE_HOME": str(tmp_path / "home"),
           "EVOFORGE_MODELS_FILE": str(models)}
    made = subprocess.run([EVOFORGE, "tokens", "create", "--name", "t", "--db", pg_url,
                           "--json"], capture_output=True, text=True, env=env, check=True)
    secret = json.loads(made.stdout.strip().splitlines()[-1])["token"]
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    proc = subprocess.Popen([EVOFORGE, "serve", "--db", pg_url, "--port", str(port)], env=env,
                            stdout=log, stderr=subprocess.STDOUT)
    try:
        client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                              headers={"Authorization": f"Bearer {secret}"})
        wait_until_healthy(client, tmp_path / "serve.log")
        assert client.get("/docs").status_code == 200
        pid = client.post("/api/problems", json={"files": tiny_files()}).json()["id"]
        run = client.post("/api/runs", json={"problem_id": pid, "config": {
            "llm": {"use": "answers"}, "budget": {"iterations": 3}}}).json()
        events = []
        with client.stream("GET", f"/api/runs/{run['id']}/events?interval_s=0.3") as stream:
            for line in stream.iter_lines():
                if line.startswith("event: "):
                    events.append(line[7:])
        got = client.get(f"/api/runs/{run['id']}")
        assert got.status_code == 200, (got.status_code, got.text)
        final = got.json()
        assert final["status"] == "completed" and final["best_score"] == 0.0, final
        assert events[-1] == "end" and events.count("program") == 4
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
        log.close()
