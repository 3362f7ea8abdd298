"""Tenants pick the operator's named models, executors and queues; a URL, a path, a key variable,
a broker or an unknown name in any config they control is a 422 that lists what is allowed."""

from __future__ import annotations

import json
from typing import Any

import pytest

from service.catalog import ServedModel
from tests.service.api.conftest import Api, tiny_files
from tests.service.engine_helpers import TOML

URL = "http://127.0.0.1:9/v1"


def _post(api: Api, config: dict[str, Any], who: str = "alice", pid: int | None = None):
    return api.client.post("/api/runs", headers=api.h(who), json={
        "problem_id": pid or api.problem(who), "config": config, "start": False})


def _refused(r: Any, *where: str) -> dict[str, Any]:
    """Asserts a 422 in the API's error body naming each field; returns the error."""
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["code"] == "invalid_config"
    assert [d["where"] for d in error["details"]] == list(where), error
    return error


def test_a_run_picking_a_named_model_is_accepted_and_driven_by_it(api: Api) -> None:
    r = _post(api, {"llm": {"use": "answers", "temperature": 0.5}, "budget": {"iterations": 4}})
    assert r.status_code == 201, r.text
    llm = r.json()["config"]["llm"]
    assert llm["use"] == "answers" and llm["url"] is None and llm["model"] is None
    assert llm["temperature"] == 0.5  # sampling stays the tenant's
    run_id = r.json()["id"]
    assert api.client.post(f"/api/runs/{run_id}/start", headers=api.h("alice")).status_code == 200
    api.drive(run_id)
    done = api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).json()
    assert done["status"] == "completed" and done["best_score"] == 0.0  # the scripted answers


def test_a_run_naming_no_model_gets_the_operators_default(api: Api) -> None:
    api.settings.models["other"] = ServedModel(backend="scripted")
    r = _post(api, {"budget": {"iterations": 2}})
    assert r.status_code == 201 and r.json()["config"]["llm"]["use"] == "answers"
    evaluation = r.json()["config"]["evaluation"]
    assert (evaluation["executor"], evaluation["queue"]) == ("local", "cpu")


@pytest.mark.parametrize(("llm", "where"), [
    ({"backend": "openai", "url": URL}, ["llm.backend", "llm.url"]),
    ({"model": "/etc/passwd"}, ["llm.model"]),
    ({"backend": "scripted", "model": "/srv/other-tenant/answers.json"},
     ["llm.backend", "llm.model"]),
    ({"api_key_env": "EVOFORGE_DB"}, ["llm.api_key_env"]),
    ({"context_window": 10_000_000}, ["llm.context_window"]),
    ({"extra_body": {"lora_request": {"lora_path": "/srv/other"}}}, ["llm.extra_body"]),
    ({"use": "gpt-99"}, ["llm.use"]),
    ({"use": "/srv/models/private.gguf"}, ["llm.use"]),
    ({"models": [{"backend": "openai", "url": URL, "name": "x"}]},
     ["llm.models[0].backend", "llm.models[0].url", "llm.models[0].use"]),
    ({"models": [{"use": "answers"}, {"use": "nowhere"}]}, ["llm.models[1].use"]),
], ids=["url", "gguf-path", "answers-path", "key-variable", "context", "request-fields",
        "unknown-name",
        "path-as-name", "member-url", "unknown-member"])
def test_a_url_path_key_variable_or_unknown_model_is_a_422_listing_the_models(
        api: Api, llm: dict[str, Any], where: list[str]) -> None:
    api.settings.models["qwen"] = ServedModel(backend="openai", url="http://vllm.internal:8000/v1")
    pid = api.problem()
    error = _refused(_post(api, {"llm": llm}, pid=pid), *where)
    assert "'answers', 'qwen'" in error["message"] and "GET /api/models" in error["message"]
    assert all(d["allowed"] == ["answers", "qwen"] for d in error["details"])
    assert "vllm.internal" not in error["message"]  # names, never the operator's URLs
    assert api.client.get("/api/runs", headers=api.h("alice")).json()["total"] == 0


@pytest.mark.parametrize(("config", "where", "allowed"), [
    ({"evaluation": {"executor": "celery", "broker": "amqp://guest:guest@10.0.0.7:5672//"}},
     "evaluation.broker", []),
    ({"evaluation": {"queue": "trainer-internal"}}, "evaluation.queue", ["cpu", "gpu"]),
    ({"evaluation": {"executor": "local"}}, "evaluation.executor", ["celery"]),
    ({"rl": {"enabled": True, "base_model": "/root/models/private"}}, "rl.base_model", []),
], ids=["broker", "queue", "executor", "rl-base-model"])
def test_a_broker_or_an_executor_queue_or_base_model_not_offered_is_a_422(
        api: Api, config: dict[str, Any], where: str, allowed: list[str]) -> None:
    api.settings.allowed_executors = ["celery"]
    error = _refused(_post(api, config), where)
    assert error["details"][0]["allowed"] == allowed and where in error["message"]
    assert "10.0.0.7" not in json.dumps(error["details"][0]["allowed"])


def test_an_ensemble_picks_its_members_by_name(api: Api) -> None:
    answers = api.tmp / "second.json"
    answers.write_text(json.dumps(["no code here"]))
    second = api.scripted(answers)
    run_id = api.run(iterations=4, llm={"models": [
        {"use": "answers", "name": "good", "temperatures": [0.2]}, {"use": second}]})
    api.drive(run_id)
    usage = api.client.get(f"/api/runs/{run_id}/llm-usage", headers=api.h("alice")).json()
    assert {m["model"] for m in usage["models"]} == {"good", "second"}, usage


def test_start_and_resume_check_the_stored_config_and_the_changes(api: Api) -> None:
    from service.db.models import RunRow

    h = api.h("alice")
    run_id = api.run(start=False)
    with api.db.session() as s:  # a run stored before names were enforced
        row = s.get(RunRow, run_id)
        row.config = {**row.config, "llm": {"backend": "openai", "url": URL}}
    _refused(api.client.post(f"/api/runs/{run_id}/start", headers=h), "llm.backend", "llm.url")
    other = api.run()
    assert api.client.post(f"/api/runs/{other}/pause", headers=h).status_code == 200
    r = api.client.post(f"/api/runs/{other}/resume", headers=h, json={"config": {
        "evaluation": {"broker": "redis://10.0.0.7:6379/0"}}})
    _refused(r, "evaluation.broker")
    r = api.client.post(f"/api/runs/{other}/resume", headers=h, json={"config": {
        "llm": {"url": URL}}})
    assert r.status_code == 422 and "remove llm.url" in r.json()["error"]["message"]
    assert api.client.get(f"/api/runs/{other}", headers=h).json()["status"] == "paused"
    r = api.client.post(f"/api/runs/{other}/resume", headers=h, json={"config": {
        "budget": {"iterations": 9}}})
    assert r.status_code == 200 and r.json()["config"]["llm"]["use"] == "answers"


@pytest.mark.parametrize(("extra", "message"), [
    (f'\n[run.llm]\nbackend = "openai"\nurl = "{URL}"\n', "[run] llm.url"),
    ('broker = "amqp://10.0.0.7//"\n', "[run] evaluation.broker"),  # TOML ends in [run.evaluation]
], ids=["llm-url", "broker"])
def test_an_uploaded_problem_whose_run_table_steers_the_server_is_refused(
        api: Api, extra: str, message: str) -> None:
    files = {**tiny_files(), "problem.toml": TOML + extra}
    r = api.client.post("/api/problems", headers=api.h("alice"), json={"files": files})
    assert r.status_code == 422 and r.json()["error"]["code"] == "invalid_problem", r.text
    assert message in r.json()["error"]["message"]
    assert all(d["file"] == "problem.toml" for d in r.json()["error"]["details"])


@pytest.mark.parametrize("where", ["/etc/hostname", "../upload-other/initial_program.py", 7])
def test_an_uploaded_problem_naming_a_file_outside_the_upload_is_refused(
        api: Api, where: object) -> None:
    toml = TOML.replace("[problem]", f"[problem]\ninitial_program = {json.dumps(where)}")
    files = {**tiny_files(), "problem.toml": toml}
    r = api.client.post("/api/problems", headers=api.h("alice"), json={"files": files})
    assert r.status_code == 422, r.text
    assert "is not a file or program folder of this upload" in r.json()["error"]["message"]


def test_admins_give_raw_configs_only_when_the_operator_allows_it(api: Api) -> None:
    raw = {"llm": {"backend": "scripted", "model": str(api.tmp / "answers.json")}}
    _refused(_post(api, raw, who="admin"), "llm.backend", "llm.model")
    api.settings.admin_raw_config = True
    assert _post(api, raw, who="admin").status_code == 201
    _refused(_post(api, raw), "llm.backend", "llm.model")  # a write token still may not
    _refused(_post(api, {"llm": {"use": "gone"}}, who="admin"), "llm.use")  # nor a lost name


def test_models_endpoint_lists_names_and_choices_never_urls(api: Api) -> None:
    api.settings.models["qwen"] = ServedModel(
        backend="openai", url="http://vllm.internal:8000/v1", model="Qwen/Qwen2.5-7B",
        context_window=8192, price_per_1k_tokens=0.5, description="Qwen 7B on the GPU pool")
    r = api.client.get("/api/models", headers=api.h("reader"))
    assert r.status_code == 200
    body = r.json()
    assert [m["name"] for m in body["models"]] == ["answers", "qwen"]
    assert body["default_model"] == "answers" and body["queues"] == ["cpu", "gpu"]
    assert body["models"][1]["context_window"] == 8192
    assert "vllm.internal" not in r.text and "Qwen/" not in r.text
    assert api.client.get("/api/models").status_code == 401
