"""The auth matrix: token scope x owner x action, plus missing, malformed and revoked tokens."""

from __future__ import annotations

import pytest

from service.api.auth_tokens import revoke_token
from tests.service.api.conftest import Api, tiny_files

READS = ["GET /api/problems/{pid}", "GET /api/runs/{rid}", "GET /api/runs/{rid}/programs",
         "GET /api/programs/{prog}", "GET /api/programs/{prog}/ancestors",
         "GET /api/runs/{rid}/timeline", "GET /api/runs/{rid}/failures"]
# (action, status when allowed): allowed writes reach the handler, which answers its own code
WRITES = [("POST /api/runs", 201), ("POST /api/runs/{rid}/pause", 409),
          ("DELETE /api/problems/{busy}", 409)]
# who -> (read status, write status) on alice's rows; None = the allowed status
EXPECT = {"alice": (200, None), "admin": (200, None), "alice_reader": (200, 403),
          "bob": (404, 404), "reader": (404, 403), "anonymous": (401, 401),
          "revoked": (401, 401)}


@pytest.fixture
def rows(api: Api) -> dict[str, int]:
    pid = api.problem("alice")
    rid = api.run("alice", iterations=2, problem_id=pid)
    api.drive(rid)
    busy = api.problem("alice")
    api.run("alice", problem_id=busy)
    progs = api.client.get(f"/api/runs/{rid}/programs?sort=-id", headers=api.h("alice")).json()
    with api.db.session() as s:
        from service.api.auth_tokens import create_token
        row, api.tokens["revoked"] = create_token(s, "gone", "admin")
        revoke_token(s, row.id)
    return {"pid": pid, "rid": rid, "busy": busy, "prog": progs["items"][0]["id"]}


def _call(api: Api, who: str, action: str, rows: dict[str, int]):
    method, path = action.split(" ")
    headers = {} if who == "anonymous" else api.h(who)
    body = {"problem_id": rows["pid"], "start": False,
            "config": {"llm": {"use": "answers"}}} if action == "POST /api/runs" else None
    return api.client.request(method, path.format(**rows), headers=headers, json=body)


@pytest.mark.parametrize("who", list(EXPECT))
def test_scope_and_owner_decide_every_action(api: Api, rows: dict[str, int], who: str) -> None:
    read_status, write_status = EXPECT[who]
    for action in READS:
        r = _call(api, who, action, rows)
        assert r.status_code == read_status, (who, action, r.text)
        if r.status_code >= 400:
            assert set(r.json()["error"]) >= {"code", "message"}
    for action, allowed in WRITES:
        r = _call(api, who, action, rows)
        assert r.status_code == (write_status or allowed), (who, action, r.text)


def test_listings_show_only_the_callers_rows_unless_admin(api: Api, rows: dict[str, int]) -> None:
    api.problem("bob")
    counts = {who: api.client.get("/api/problems", headers=api.h(who)).json()["total"]
              for who in ("alice", "alice_reader", "bob", "reader", "admin")}
    assert counts == {"alice": 2, "alice_reader": 2, "bob": 1, "reader": 0, "admin": 3}
    runs = api.client.get("/api/runs", headers=api.h("bob")).json()
    assert runs["total"] == 0


def test_read_tokens_cannot_create_problems_and_bad_headers_are_named(api: Api) -> None:
    r = api.client.post("/api/problems", json={"files": tiny_files()}, headers=api.h("reader"))
    assert r.status_code == 403 and "needs write" in r.json()["error"]["message"]
    r = api.client.get("/api/runs", headers={"Authorization": "Basic abc"})
    assert r.status_code == 401 and "Bearer" in r.json()["error"]["message"]
    r = api.client.get("/api/runs")
    assert r.status_code == 401 and "evoforge tokens create" in r.json()["error"]["message"]
    assert r.headers["www-authenticate"] == "Bearer"
    r = api.client.get("/api/runs", headers={"Authorization": "Bearer evf_wrong"})
    assert r.status_code == 401 and "unknown or revoked" in r.json()["error"]["message"]
    assert api.client.get("/api/health").json() == {"status": "ok"}


def test_tokens_are_stored_hashed(api: Api) -> None:
    from sqlalchemy import select

    from service.db.models import ApiTokenRow

    with api.db.session() as s:
        stored = {r.token_hash for r in s.scalars(select(ApiTokenRow))}
    assert not any(secret in stored for secret in api.tokens.values())
    assert all(len(h) == 64 for h in stored)
