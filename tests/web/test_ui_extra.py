"""The UI's own endpoints answer only tokens that may see the run, with the usual error bodies."""

from __future__ import annotations

import httpx

from service.api.auth_tokens import create_token
from tests.web.conftest import Site


def _paths(site: Site) -> list[str]:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    return [f"/api/ui/runs/{site.run_id}/islands", f"/api/ui/runs/{site.run_id}/top-lineages",
            f"/api/ui/runs/{site.run_id}/adapters", f"/api/ui/programs/{best}/sample",
            f"/api/ui/programs/{best}/compare/1", f"/api/runs/{site.run_id}/scores",
            f"/api/ui/runs/{site.run_id}/reference"]


def test_ui_endpoints_hide_other_owners_runs_and_need_a_token(site: Site) -> None:
    with site.db.session() as s:
        _, other = create_token(s, "stranger", "read", None)
    for path in _paths(site):
        assert site.client.get(path).status_code == 200, path
        r = httpx.get(site.url + path, headers={"Authorization": f"Bearer {other}"})
        assert r.status_code == 404 and "not found" in r.json()["error"]["message"], (path, r.text)
        assert httpx.get(site.url + path).status_code == 401, path


def test_top_lineages_keeps_every_ancestor_and_ends_the_best_path_at_the_best(site: Site) -> None:
    run = site.client.get(f"/api/runs/{site.run_id}").json()
    got = site.client.get(f"/api/ui/runs/{site.run_id}/top-lineages?k=3").json()
    ids = {n["id"] for n in got["nodes"]}
    assert got["best_path"][-1] == run["best_program_id"]
    assert all(n["parent_id"] in ids for n in got["nodes"] if n["parent_id"] is not None)
    bad = site.client.get(f"/api/ui/runs/{site.run_id}/top-lineages?k=0")
    assert bad.status_code == 422 and "k" in bad.text
