"""Operating the service: a run through `evoforge serve`, `evoforge controller` and
`evoforge worker` as real processes on PostgreSQL and RabbitMQ; the metrics each one serves agree
with the rows, and a killed worker shows as lost in `evoforge status` and GET /api/fleet within
the heartbeat window."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select

from service.db import Database, upgrade
from service.db.models import EvaluationRow, RunRow
from tests.conftest import free_port, wait_until_healthy
from tests.service.api.conftest import tiny_files
from tests.service.celery_helpers import BROKERS, new_queue, start_worker
from tests.service.engine_helpers import returns

EVOFORGE = str(Path(sys.executable).parent / "evoforge")
REPO = Path(__file__).resolve().parents[2]
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(url: str) -> Samples:
    """Returns every sample a /metrics page holds, by (name, labels)."""
    text = httpx.get(url, timeout=30).raise_for_status().text
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples: Samples, name: str, **labels: str) -> float:
    """Returns the sample's value (0 when it is absent: a counter never incremented)."""
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """Returns the sum of the samples of name whose labels include labels."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


def wait_for(what: Callable[[], bool], timeout: float, message: str, *logs: Path) -> None:
    deadline = time.monotonic() + timeout
    while not what():
        if time.monotonic() > deadline:
            pytest.fail(message + "".join(f"\n--- {p.name}:\n{p.read_text()[-3000:]}"
                                          for p in logs))
        time.sleep(0.2)


@contextmanager
def process(args: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    """Runs `evoforge ARGS` with its output in log; stops it (SIGTERM) on exit."""
    with log.open("w") as out:
        proc = subprocess.Popen([EVOFORGE, *args], env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            yield proc
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def answers_model(tmp: Path, values: list[object]) -> Path:
    """Writes a models file naming one scripted model, 'answers'; returns its path."""
    answers = tmp / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in values]))
    models = tmp / "models.toml"
    models.write_text(f'[models.answers]\nbackend = "scripted"\nmodel = "{answers}"\n')
    return models


def service_env(tmp: Path, pg_url: str, queue: str) -> dict[str, str]:
    """Returns the environment every process of the stack shares: one database, one broker,
    API runs on Celery's queue, fast heartbeats and a short window."""
    return {**os.environ, "EVOFORGE_HOME": str(tmp / "home"), "EVOFORGE_DB": pg_url,
            "EVOFORGE_BROKER": BROKERS["rabbitmq"],
            "EVOFORGE_MODELS_FILE": str(answers_model(tmp, [4, "1/0", 8, 10, "2/0", 9])),
            "EVOFORGE_ALLOWED_EXECUTORS": '["celery"]',
            "EVOFORGE_ALLOWED_QUEUES": json.dumps([queue]),
            "EVOFORGE_HEARTBEAT_S": "0.5", "EVOFORGE_HEARTBEAT_WINDOW_S": "3"}


def admin_client(env: dict[str, str], port: int, log: Path) -> httpx.Client:
    """Returns a client of the API on port with a new admin token, once the API answers."""
    made = subprocess.run([EVOFORGE, "tokens", "create", "--name", "ops", "--scope", "admin",
                           "--json"], capture_output=True, text=True, env=env, check=True)
    secret = json.loads(made.stdout.strip().splitlines()[-1])["token"]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30,
                          headers={"Authorization": f"Bearer {secret}"})
    wait_until_healthy(client, log)
    return client


def test_metrics_of_a_run_through_api_controller_and_worker_agree_with_its_rows(
        pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    queue = new_queue()
    env = service_env(tmp_path, pg_url, queue)
    api_port, controller_port, worker_port = free_port(), free_port(), free_port()
    json_logs = ("--log-format", "json")
    worker = start_worker(BROKERS["rabbitmq"], queue, tmp_path / "worker", env=env,
                          args=("--metrics-port", str(worker_port), *json_logs),
                          stdout_apart=True)  # Celery prints its shutdown notice on stdout
    api_log, controller_log = tmp_path / "api.log", tmp_path / "controller.log"
    try:
        with process(["serve", "--no-controller", "--port", str(api_port), *json_logs], env,
                     api_log), \
                process(["controller", "--poll", "0.2", "--metrics-port", str(controller_port),
                         *json_logs], env, controller_log):
            client = admin_client(env, api_port, api_log)
            problem = client.post("/api/problems", json={"files": tiny_files()}).json()["id"]
            run_id = client.post("/api/runs", json={"problem_id": problem, "config": {
                "llm": {"use": "answers"}, "budget": {"iterations": 6}}}).json()["id"]
            wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "completed",
                     120, "the run did not complete", controller_log, worker.log)
            api = scrape(f"http://127.0.0.1:{api_port}/metrics")
            work = scrape(f"http://127.0.0.1:{worker_port}/metrics")
            ctl = scrape(f"http://127.0.0.1:{controller_port}/metrics")
    finally:
        worker.stop()
    db = Database(pg_url)
    with db.session() as s:
        run = s.get(RunRow, run_id)
        outcomes = s.execute(select(EvaluationRow.status, EvaluationRow.error_kind, func.count())
                             .where(EvaluationRow.run_id == run_id)
                             .group_by(EvaluationRow.status, EvaluationRow.error_kind)).all()
        queues = set(s.scalars(select(EvaluationRow.queue).where(EvaluationRow.run_id == run_id)))
    db.close()
    assert queues == {queue} and run.failed == 2 and run.iterations == 6
    # the API: what the database holds, at scrape time
    assert value(api, "evoforge_runs", status="completed") == 1
    assert value(api, "evoforge_runs", status="running") == 0
    of_run = {"run_id": str(run_id), "model": "answers"}
    assert value(api, "evoforge_run_iterations_total", **of_run) == run.iterations
    assert value(api, "evoforge_run_llm_calls_total", **of_run) == run.llm_calls
    assert value(api, "evoforge_run_evaluations_total", **of_run) == run.evaluations
    assert value(api, "evoforge_run_failed_evaluations_total", **of_run) == run.failed
    assert value(api, "evoforge_run_tokens_total", kind="prompt", **of_run) == run.prompt_tokens
    assert value(api, "evoforge_run_tokens_total", kind="completion",
                 **of_run) == run.completion_tokens
    assert value(api, "evoforge_run_best_score", **of_run) == run.best_score == 0.0
    assert value(api, "evoforge_queue_depth", queue=queue) == 0
    assert value(api, "evoforge_workers_alive", queue=queue) == 1
    assert value(api, "evoforge_fleet_members", kind="controller", state="alive") == 1
    assert value(api, "evoforge_database_up") == 1 and value(api, "evoforge_broker_up") == 1
    # the worker: each evaluation it closed, by status and failure kind, and its duration
    for status, kind, n in outcomes:
        assert value(work, "evoforge_evaluations_total", queue=queue, status=status,
                     failure_kind=kind or "") == n, (status, kind, n)
    assert total(work, "evoforge_evaluations_total") == run.evaluations
    assert value(work, "evoforge_evaluation_seconds_count", queue=queue) == run.evaluations
    assert total(work, "evoforge_sandbox_layer_evaluations_total") >= run.evaluations
    # the controller: the LLM calls it stored, their tokens and latency
    assert value(ctl, "evoforge_llm_calls_total", model="answers") == run.llm_calls
    assert value(ctl, "evoforge_llm_tokens_total", model="answers",
                 kind="prompt") == run.prompt_tokens
    assert value(ctl, "evoforge_llm_tokens_total", model="answers",
                 kind="completion") == run.completion_tokens
    assert value(ctl, "evoforge_llm_request_seconds_count", model="answers") == run.llm_calls
    assert total(ctl, "evoforge_evaluations_total") == 0  # its worker counted them
    # every process logged one JSON object a line (on stderr); the worker's carry the ids
    records = {p: json_lines(p) for p in (api_log, controller_log, worker.log)}
    assert all(records.values())
    failed = [r for r in records[worker.log] if r["message"].startswith("evaluation failed")]
    assert len(failed) == run.failed and all(r["evaluation_id"] and r["program_id"]
                                             for r in failed)


def json_lines(log: Path) -> list[dict]:
    """Returns the records of a log that must be one JSON object a line, with the fields every
    record has."""
    records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
    for r in records:
        assert {"time", "level", "component", "message"} <= set(r), (log.name, r)
    return records


def fleet_state(env: dict[str, str], client: httpx.Client, node: str) -> tuple[str, str]:
    """Returns the worker's state as `evoforge status --json` and GET /api/fleet say."""
    done = subprocess.run([EVOFORGE, "status", "--json"], capture_output=True, text=True,
                          env=env, check=True)
    cli = {w["name"]: w["state"] for w in json.loads(done.stdout)["workers"]}
    return cli.get(node, "absent"), api_state(client, node)


def api_state(client: httpx.Client, node: str) -> str:
    """Returns the worker's state as GET /api/fleet says."""
    api = {w["name"]: w["state"] for w in client.get("/api/fleet").json()["workers"]}
    return api.get(node, "absent")


def test_a_killed_worker_shows_as_lost_within_the_heartbeat_window(pg_url: str,
                                                                   tmp_path: Path) -> None:
    upgrade(pg_url)
    queue = new_queue()
    env = service_env(tmp_path, pg_url, queue)
    port = free_port()
    worker = start_worker(BROKERS["rabbitmq"], queue, tmp_path / "worker", env=env)
    node = f"evoforge-{worker.proc.pid}@{os.uname().nodename}"
    log = tmp_path / "api.log"
    try:
        with process(["serve", "--port", str(port)], env, log):  # with its embedded controller
            client = admin_client(env, port, log)
            wait_for(lambda: fleet_state(env, client, node) == ("alive", "alive"), 30,
                     "the worker's heartbeat never showed", worker.log)
            fleet = client.get("/api/fleet").json()
            assert [q["workers_alive"] for q in fleet["queues"] if q["name"] == queue] == [1]
            assert [c["state"] for c in fleet["controllers"]] == ["alive"]
            table = subprocess.run([EVOFORGE, "status"], capture_output=True, text=True,
                                   env={**env, "COLUMNS": "250"}, check=True).stdout
            assert node in table and "alive" in table and queue in table
            worker.kill()
            killed = time.monotonic()
            # the window is read on the API (one HTTP call a probe); the CLI, a process start
            # a probe, is then asked whether it agrees
            wait_for(lambda: api_state(client, node) == "lost", 3 + 2,
                     "the killed worker was not shown as lost within the window")
            assert time.monotonic() - killed <= 3 + 2
            assert fleet_state(env, client, node) == ("lost", "lost")
            table = subprocess.run([EVOFORGE, "status"], capture_output=True, text=True,
                                   env={**env, "COLUMNS": "250"}, check=True).stdout
            assert "lost" in table
            assert client.get("/api/fleet", headers={"Authorization": ""}).status_code == 401
    finally:
        worker.stop()


def test_a_folder_problem_runs_through_api_controller_and_a_celery_worker(
        pg_url: str, tmp_path: Path) -> None:
    upgrade(pg_url)
    queue = new_queue()
    env = service_env(tmp_path, pg_url, queue)
    answers = tmp_path / "files.json"
    answers.write_text(json.dumps([
        "line.py\n```python\ndef line(x):\n    return x + 1.0\n```\n",
        "bend.py\n```python\ndef bend(x):\n    return x * x\n```\n"]))
    models = tmp_path / "files.toml"
    models.write_text(f'[models.files]\nbackend = "scripted"\nmodel = "{answers}"\n')
    env["EVOFORGE_MODELS_FILE"] = str(models)
    source = REPO / "problems" / "quickstart_files"
    files = {str(p.relative_to(source)): p.read_text() for p in sorted(source.rglob("*"))
             if p.is_file() and "__pycache__" not in p.parts}
    api_port = free_port()
    worker = start_worker(BROKERS["rabbitmq"], queue, tmp_path / "worker", env=env)
    api_log, controller_log = tmp_path / "api.log", tmp_path / "controller.log"
    try:
        with process(["serve", "--no-controller", "--port", str(api_port)], env, api_log), \
                process(["controller", "--poll", "0.2"], env, controller_log):
            client = admin_client(env, api_port, api_log)
            created = client.post("/api/problems", json={"files": files})
            assert created.status_code == 201, created.text
            run_id = client.post("/api/runs", json={"problem_id": created.json()["id"], "config": {
                "llm": {"use": "files"}, "budget": {"iterations": 2},
                "search": {"num_islands": 1}}}).json()["id"]
            wait_for(lambda: client.get(f"/api/runs/{run_id}").json()["status"] == "completed",
                     120, "the folder run did not complete", controller_log, worker.log)
            run = client.get(f"/api/runs/{run_id}").json()
            best = client.get(f"/api/programs/{run['best_program_id']}").json()
    finally:
        worker.stop()
    assert run["best_score"] > run["initial_score"] and run["iterations"] == 2
    assert sorted(best["files"]) == ["bend.py", "curve.py", "line.py"]
    assert "return x * x" in best["files"]["bend.py"] or "x + 1.0" in best["files"]["line.py"]
    db = Database(pg_url)
    with db.session() as s:
        workers = set(s.scalars(select(EvaluationRow.worker).where(
            EvaluationRow.run_id == run_id)))
        statuses = set(s.scalars(select(EvaluationRow.status).where(
            EvaluationRow.run_id == run_id)))
    db.close()
    assert statuses == {"ok"} and all(w and w != "local" for w in workers)
