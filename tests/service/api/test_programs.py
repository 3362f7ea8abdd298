"""Programs, lineage, analytics and live events of a real (scripted-LLM) run."""

from __future__ import annotations

import itertools
import json

import pytest

from tests.service.api.conftest import Api
from tests.service.engine_helpers import returns


@pytest.fixture
def done(api: Api) -> int:
    """A driven run of 8 iterations on 2 islands of 2 programs each, so programs get evicted."""
    run_id = api.run(iterations=8, search={"num_islands": 2, "population_size": 2,
                                           "migration_interval": 4, "elite_size": 1})
    api.drive(run_id)
    return run_id


def _get(api: Api, path: str, who: str = "alice"):
    r = api.client.get(path, headers=api.h(who))
    assert r.status_code == 200, r.text
    return r.json()


def test_listing_filters_sorts_and_pages(api: Api, done: int) -> None:
    everything = _get(api, f"/api/runs/{done}/programs?limit=1000")
    assert everything["total"] == len(everything["items"]) >= 9
    ok = _get(api, f"/api/runs/{done}/programs?status=ok&sort=-score&limit=3")
    scores = [p["score"] for p in ok["items"]]
    assert scores == sorted(scores, reverse=True) and scores[0] == 0.0
    page2 = _get(api, f"/api/runs/{done}/programs?limit=3&offset=3")
    assert [p["id"] for p in page2["items"]] == [p["id"] for p in everything["items"][3:6]]
    island1 = _get(api, f"/api/runs/{done}/programs?island=1&limit=1000")["items"]
    assert island1 and all(p["island"] == 1 for p in island1)
    initial = _get(api, f"/api/runs/{done}/programs?kind=initial")["items"]
    assert len(initial) == 1 and initial[0]["parent_id"] is None
    high = _get(api, f"/api/runs/{done}/programs?min_score=-1.5")["items"]
    assert all(p["score"] >= -1.5 for p in high) and high
    assert "code" not in everything["items"][0]
    bad = api.client.get(f"/api/runs/{done}/programs?sort=code", headers=api.h("alice"))
    assert bad.status_code == 422 and bad.json()["error"]["code"] == "invalid"


def test_score_order_puts_unscored_last_and_keyset_pages_follow_ids(api: Api) -> None:
    answers = api.tmp / "mixed.json"
    answers.write_text(json.dumps(["```python\ndef value():\n    return 1/0\n```\n"] +
                                  [returns(v) for v in (4, 12, 7)]))
    run_id = api.run(iterations=4, llm={"use": api.scripted(answers)})
    api.drive(run_id)
    every = _get(api, f"/api/runs/{run_id}/programs?limit=100")["items"]
    for sort, flip in (("-score", True), ("score", False)):
        ordered = [p["score"] for p in _get(api, f"/api/runs/{run_id}/programs?sort={sort}"
                                                  f"&limit=100")["items"]]
        scored = [x for x in ordered if x is not None]
        assert scored == sorted(scored, reverse=flip) and ordered[len(scored):] == [None]
        pages = [p["score"] for off in range(0, len(every), 2) for p in _get(
            api, f"/api/runs/{run_id}/programs?sort={sort}&limit=2&offset={off}")["items"]]
        assert pages == ordered
    first = _get(api, f"/api/runs/{run_id}/programs?limit=2")
    rest = _get(api, f"/api/runs/{run_id}/programs?limit=100&after_id={first['next_after']}")
    assert [p["id"] for p in first["items"] + rest["items"]] == [p["id"] for p in every]
    assert first["total"] == len(every)
    uncounted = _get(api, f"/api/runs/{run_id}/programs?limit=2&count=false")
    assert uncounted["total"] is None and uncounted["items"] == first["items"]
    later = _get(api, f"/api/runs/{run_id}/programs?sort=-score&limit=100"
                      f"&after_id={first['next_after']}")  # with other sorts, a filter
    assert later["next_after"] is None and [p["id"] for p in later["items"]] == [
        p["id"] for p in _get(api, f"/api/runs/{run_id}/programs?sort=-score&limit=100")["items"]
        if p["id"] > first["next_after"]]


def test_one_program_has_code_diff_metrics_and_the_llm_exchange(api: Api, done: int) -> None:
    run = _get(api, f"/api/runs/{done}")
    prog = _get(api, f"/api/programs/{run['best_program_id']}")
    assert "return 10" in prog["code"] and prog["metrics"]["value"] == 10.0
    assert prog["diff"].startswith("--- program ") and "+    return 10" in prog["diff"]
    assert prog["model"] == "answers" and "return 10" in prog["completion"]
    assert prog["prompt"][0]["role"] == "system" and prog["tokens"] > 0
    assert prog["evaluations"][0]["status"] == "ok" and prog["features"]


def test_ancestors_reach_the_initial_even_through_evicted_parents(api: Api, done: int) -> None:
    items = _get(api, f"/api/runs/{done}/genealogy?limit=1000")["items"]
    deepest = max(items, key=lambda p: p["generation"])
    chain = _get(api, f"/api/programs/{deepest['id']}/ancestors")
    assert chain[0]["id"] == deepest["id"] and chain[-1]["kind"] == "initial"
    assert all(a["parent_id"] == b["id"] for a, b in itertools.pairwise(chain))
    evicted = [p for p in items if p["status"] == "ok" and not p["in_archive"]]
    assert evicted, "population_size=2 must evict programs"
    children = [p for p in items if p["parent_id"] in {e["id"] for e in evicted}]
    assert children and _get(api, f"/api/programs/{children[0]['id']}/ancestors")[1]["id"] in \
        {e["id"] for e in evicted}


def test_descendants_and_genealogy_pages(api: Api, done: int) -> None:
    items = _get(api, f"/api/runs/{done}/genealogy?limit=1000")["items"]
    root = next(p for p in items if p["kind"] == "initial")
    everyone = _get(api, f"/api/programs/{root['id']}/descendants?limit=1000")["items"]
    assert {p["id"] for p in everyone} == {p["id"] for p in items} - {root["id"]}
    near = _get(api, f"/api/programs/{root['id']}/descendants?depth=1")["items"]
    assert near and all(p["parent_id"] == root["id"] for p in near)
    page = _get(api, f"/api/runs/{done}/genealogy?limit=4")
    assert len(page["items"]) == 4 and page["next_after"] == page["items"][-1]["id"]
    rest = _get(api, f"/api/runs/{done}/genealogy?limit=1000&after_id={page['next_after']}")
    assert [p["id"] for p in page["items"] + rest["items"]] == [p["id"] for p in items]


def test_analytics(api: Api, done: int) -> None:
    tl = _get(api, f"/api/runs/{done}/timeline")
    scores = [p["score"] for p in tl["overall"]]
    assert scores[0] == -9.0 and scores[-1] == 0.0 and scores == sorted(scores)
    assert set(tl["islands"]) <= {"0", "1"} and tl["islands"]
    grid = _get(api, f"/api/runs/{done}/map-elites")
    assert grid["dimensions"] == ["complexity", "diversity"] and grid["cells_per_island"] == 64
    assert sum(i["occupied"] for i in grid["islands"]) >= 1
    usage = _get(api, f"/api/runs/{done}/llm-usage")
    assert usage["llm_calls"] == 8 and usage["models"][0]["completions"] == 8
    assert sum(usage["outcomes"].values()) == 8
    fails = _get(api, f"/api/runs/{done}/failures")
    assert fails["evaluations"]["ok"] >= 8 and fails["kinds"] == []


def test_failure_reasons_are_grouped(api: Api) -> None:
    answers = api.tmp / "bad.json"
    answers.write_text(json.dumps(["```python\ndef value():\n    return 1/0\n```\n",
                                   "```python\ndef value():\n    return 5\n```\n"]))
    run_id = api.run(iterations=2, llm={"use": api.scripted(answers)})
    api.drive(run_id)
    kinds = _get(api, f"/api/runs/{run_id}/failures")["kinds"]
    assert kinds[0]["count"] == 1 and "ZeroDivisionError" in kinds[0]["example"]


def test_events_stream_programs_and_progress_then_end(api: Api, done: int) -> None:
    with api.client.stream("GET", f"/api/runs/{done}/events",
                           headers=api.h("alice")) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    names = [ln.split(": ", 1)[1] for ln in text.splitlines() if ln.startswith("event: ")]
    assert names.count("program") >= 9 and "progress" in names and names[-1] == "end"
    r = api.client.get(f"/api/runs/{done}/events?access_token={api.tokens['bob']}")
    assert r.status_code == 404
    r = api.client.get(f"/api/runs/{done}/events?access_token=nope")
    assert r.status_code == 401


def test_a_repaired_answer_says_which_repair_in_the_program_the_sample_and_the_usage(
        api: Api) -> None:
    answers = api.tmp / "repairs.json"
    answers.write_text(json.dumps([
        returns(4),  # read as written
        "Sure! Here is the code:\ndef value():\n    return 9\nIt is closer to 10.",  # no fence
        "```python\ndef value():\n    return (7\n```\n"]))  # does not compile: rejected
    run_id = api.run(iterations=3, llm={"use": api.scripted(answers)})
    api.drive(run_id)
    programs = _get(api, f"/api/runs/{run_id}/programs?kind=mutation&limit=10")["items"]
    details = {p["id"]: _get(api, f"/api/programs/{p['id']}") for p in programs}
    repairs = {d["code"].count("return 9"): d["repair"] for d in details.values()}
    assert repairs == {0: None, 1: "fence+strip_prose"}
    fixed = next(i for i, d in details.items() if d["repair"])
    assert _get(api, f"/api/ui/programs/{fixed}/sample")["repair"] == "fence+strip_prose"
    usage = _get(api, f"/api/runs/{run_id}/llm-usage")
    assert usage["repairs"] == {"fence+strip_prose": 1} and usage["outcomes"]["rejected"] == 1
