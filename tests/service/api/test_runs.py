"""Runs over REST: config validation, start/pause/resume/stop state machine, quotas, progress."""

from __future__ import annotations

from tests.service.api.conftest import Api


def test_run_is_created_with_its_config_and_driven_to_completion(api: Api) -> None:
    run_id = api.run(iterations=4, budget={"iterations": 4, "target_score": 5.0},
                     search={"num_islands": 3, "selection": "power_law"})
    r = api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).json()
    assert r["status"] == "queued" and r["iterations"] == 0 and r["progress"] == 0
    assert r["config"]["search"]["num_islands"] == 3
    assert r["config"]["search"]["selection"] == "power_law"
    assert r["config"]["budget"]["target_score"] == 5.0
    assert r["config"]["evaluation"]["timeout_s"] == 10  # problem.toml's [run] defaults kept
    api.drive(run_id)
    r = api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).json()
    assert r["status"] == "completed" and r["iterations"] == 4 and r["progress"] == 1.0
    assert r["best_score"] == 0.0 and r["initial_score"] == -9.0 and r["llm_calls"] == 4
    listed = api.client.get("/api/runs?status=completed", headers=api.h("alice")).json()
    assert [x["id"] for x in listed["items"]] == [run_id]


def test_bad_config_is_a_422_naming_the_key(api: Api) -> None:
    pid = api.problem()
    r = api.client.post("/api/runs", headers=api.h("alice"), json={
        "problem_id": pid, "config": {"search": {"num_islandz": 2}}})
    assert r.status_code == 422
    assert "unknown key 'search.num_islandz'" in r.json()["error"]["message"]
    r = api.client.post("/api/runs", headers=api.h("alice"), json={
        "problem_id": pid, "config": {"budget": {"iterations": -1}}})
    assert r.status_code == 422 and "budget.iterations" in r.json()["error"]["message"]
    r = api.client.get("/api/runs?status=bogus", headers=api.h("alice"))
    assert r.status_code == 422 and "running" in r.json()["error"]["message"]


def test_state_machine_without_a_controller(api: Api) -> None:
    h = api.h("alice")
    run_id = api.run(start=False)
    assert api.client.get(f"/api/runs/{run_id}", headers=h).json()["status"] == "created"
    assert api.client.post(f"/api/runs/{run_id}/resume", headers=h).status_code == 409
    assert api.client.post(f"/api/runs/{run_id}/start", headers=h).json()["status"] == "queued"
    assert api.client.post(f"/api/runs/{run_id}/start", headers=h).status_code == 409
    assert api.client.post(f"/api/runs/{run_id}/pause", headers=h).json()["status"] == "paused"
    r = api.client.post(f"/api/runs/{run_id}/resume", headers=h,
                        json={"config": {"budget": {"iterations": 9}}})
    assert r.json()["status"] == "queued" and r.json()["budget_iterations"] == 9
    r = api.client.post(f"/api/runs/{run_id}/stop", headers=h).json()
    assert r["status"] == "stopped" and r["finished_at"]
    r = api.client.post(f"/api/runs/{run_id}/pause", headers=h)
    assert r.status_code == 409 and r.json()["error"]["code"] == "conflict"


def test_halting_a_leased_run_leaves_a_request_for_its_controller(api: Api) -> None:
    from service.db.models import RunRow

    run_id = api.run()
    with api.db.session() as s:
        s.get(RunRow, run_id).status, s.get(RunRow, run_id).lease_owner = "running", "elsewhere:1"
    r = api.client.post(f"/api/runs/{run_id}/pause", headers=api.h("alice")).json()
    assert r["status"] == "running" and r["control"] == "pause"
    r = api.client.post(f"/api/runs/{run_id}/stop", headers=api.h("alice")).json()
    assert r["control"] == "stop"


def test_quota_limits_active_runs_per_token(api: Api) -> None:
    h = api.h("alice")  # quota 2
    pid = api.problem()
    first, second = api.run(problem_id=pid), api.run(problem_id=pid)
    r = api.client.post("/api/runs", headers=h, json={"problem_id": pid, "config": {
        "llm": {"use": "answers"}}})
    assert r.status_code == 429 and r.json()["error"]["code"] == "quota_exceeded"
    assert "may have 2 active run(s)" in r.json()["error"]["message"]
    parked = api.run(problem_id=pid, start=False)  # created, not active: allowed
    assert api.client.post(f"/api/runs/{parked}/start", headers=h).status_code == 429
    api.client.post(f"/api/runs/{first}/pause", headers=h)
    assert api.client.post(f"/api/runs/{parked}/start", headers=h).status_code == 200
    assert api.client.post(f"/api/runs/{first}/resume", headers=h).status_code == 429
    me = api.client.get("/api/me", headers=h).json()
    assert me["active_runs"] == 2 and me["max_active_runs"] == 2 and second


def test_problem_with_an_active_run_cannot_be_deleted(api: Api) -> None:
    pid = api.problem()
    run_id = api.run(problem_id=pid)
    r = api.client.delete(f"/api/problems/{pid}", headers=api.h("alice"))
    assert r.status_code == 409 and "stop them first" in r.json()["error"]["message"]
    api.client.post(f"/api/runs/{run_id}/stop", headers=api.h("alice"))
    assert api.client.delete(f"/api/problems/{pid}", headers=api.h("alice")).status_code == 204
    assert api.client.get(f"/api/runs/{run_id}", headers=api.h("alice")).status_code == 404


def test_concurrent_quota_checks_of_one_owner_take_turns(api: Api) -> None:
    import threading

    from service.api.auth_tokens import authenticate
    from service.api.errors import ApiError
    from service.api.routes.runs import _check_quota  # noqa: PLC2701 - two checks, interleaved
    from service.db.models import RunRow
    from service.db.queries import add_run

    pid = api.problem()
    api.run(problem_id=pid)  # alice (quota 2) has one active run: room for exactly one more
    with api.db.session() as s:
        alice = authenticate(s, api.tokens["alice"])
    assert alice is not None
    outcome: list[object] = []

    def second_request() -> None:
        with api.db.session() as s2:
            try:
                _check_quota(s2, alice)
                outcome.append("allowed")
            except ApiError as exc:
                outcome.append(exc.status)

    with api.db.session() as s1:  # the first request: checked, its run added, not yet committed
        _check_quota(s1, alice)
        run = add_run(s1, pid, {}, 0)
        run.owner_token_id, run.status = alice.owner_id, "queued"
        s1.flush()
        other = threading.Thread(target=second_request)
        other.start()
        other.join(timeout=1.0)
        assert other.is_alive() and not outcome  # it waits for the first request's commit
    other.join(timeout=10)
    assert outcome == [429]
    with api.db.session() as s:
        assert s.query(RunRow).filter(RunRow.status == "queued").count() == 2
