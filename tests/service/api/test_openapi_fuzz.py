"""Schemathesis against `evoforge serve` on PostgreSQL: every check of the whole contract
(statuses, bodies, headers, methods and Allow, schema-valid requests accepted and schema-invalid
ones refused, auth) on every operation, through its coverage, fuzzing and stateful phases."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path

import httpx

from tests.conftest import REPO, free_port
from tests.service.api.conftest import Api

BIN = Path(sys.executable).parent
EXAMPLES = 40  # per operation and phase, as by hand (docs/service.md): about a minute on 2 cores


def test_the_served_api_keeps_its_whole_openapi_contract(api: Api, pg_url: str) -> None:
    problem = api.problem("bob")  # data to reach: a problem, a finished run, a created one
    api.drive(api.run("bob", iterations=2, problem_id=problem))
    api.run("bob", start=False, problem_id=problem)
    models = api.tmp / "models.toml"  # the same named model as the fixture's settings
    models.write_text(f'[models.answers]\nbackend = "scripted"\nmodel = "{api.tmp}/answers.json"\n')
    env = {**os.environ, "EVOFORGE_HOME": str(api.tmp / "home"),
           "EVOFORGE_MODELS_FILE": str(models)}
    port, log = free_port(), (api.tmp / "serve.log").open("w")
    serve = subprocess.Popen([BIN / "evoforge", "serve", "--db", pg_url, "--port", str(port),
                              "--no-controller"], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        _wait(f"http://127.0.0.1:{port}/api/health", api.tmp / "serve.log")
        st = subprocess.run(
            [BIN / "st", "--config-file", REPO / "schemathesis.toml", "run",
             f"http://127.0.0.1:{port}/api/openapi.json", "--checks", "all",
             "--max-examples", str(EXAMPLES), "--generation-deterministic", "--no-color",
             "-H", f"Authorization: Bearer {api.tokens['bob']}"],
            capture_output=True, text=True, timeout=300, check=False, cwd=api.tmp)
    finally:
        serve.terminate()
        serve.wait(timeout=30)
        log.close()
    summary = st.stdout[st.stdout.find("= SUMMARY ="):]
    assert st.returncode == 0, st.stdout[-6000:] + st.stderr[-2000:]
    tested = re.search(r"Tested: (\d+)", summary)
    assert tested and int(tested.group(1)) >= 30, summary
    assert "Server error" not in summary and " passed" in summary, summary


def test_a_405_names_every_method_of_the_path_and_unknown_api_paths_are_404(api: Api) -> None:
    h = api.h("bob")
    r = api.client.request("PUT", "/api/problems", headers=h)
    assert r.status_code == 405 and r.headers["allow"] == "GET, POST"
    assert r.json()["error"]["code"] == "method_not_allowed"
    assert api.client.get("/api/problems/upload", headers=h).headers["allow"] == "POST"
    assert api.client.options("/api/runs/1/stop", headers=h).headers["allow"] == "POST"
    assert api.client.get("/api/nothing/here", headers=h).status_code == 404


def test_the_run_config_schema_is_what_this_server_accepts(api: Api) -> None:
    spec = api.client.get("/api/openapi.json").json()
    schemas = spec["components"]["schemas"]
    assert schemas["RunCreate"]["properties"]["config"]["$ref"].endswith("/RunConfig")
    llm = schemas["LLMConfig"]["properties"]
    assert llm["use"]["anyOf"][0]["enum"] == ["answers"] and "url" not in llm
    assert "broker" not in schemas["EvaluationConfig"]["properties"]
    assert "default" not in schemas["BudgetConfig"]["properties"]["iterations"]  # the problem's
    statuses = spec["paths"]["/api/runs"]["get"]["parameters"][0]["schema"]["anyOf"][0]
    assert statuses["$ref"].endswith("/RunStatus")
    errors = spec["paths"]["/api/runs/{run_id}/start"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422", "429"} <= set(errors)
    assert errors["409"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorBody")
    problem = api.problem("bob")
    bad = api.client.post("/api/runs", headers=api.h("bob"), json={
        "problem_id": problem, "config": {"rl": {"enabled": 0}, "budget": {"iterations": "3"}}})
    assert bad.status_code == 422 and "rl.enabled" in bad.json()["error"]["message"]
    assert "budget.iterations" in bad.json()["error"]["message"]
    good = api.client.post("/api/runs", headers=api.h("bob"), json={  # JSON: 3.0 is an integer
        "problem_id": float(problem), "start": False, "config": {"budget": {"iterations": 3.0}}})
    assert good.status_code == 201 and good.json()["budget_iterations"] == 3, good.text


def _wait(url: str, log: Path) -> None:
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text()[-3000:]
        time.sleep(0.3)
