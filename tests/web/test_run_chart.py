"""The run page tells the truth at a glance: every evaluated program is a dot over the run's real
iterations, failed ones are ticked, and the islands table and the MAP-Elites grids list the same
islands."""

from __future__ import annotations

import hashlib
import json
import time

from playwright.sync_api import Page, expect
from sqlalchemy import insert, update

from service.db.models import ProgramRow, RunRow
from tests.web.conftest import Site, shoot

EVALUATED = ("ok", "failed")
COPIES = ("migrant", "reseed")


def _programs(site: Site, run_id: int) -> list[dict]:
    """Returns every program of a run, read through the programs listing."""
    items, after = [], 0
    while after is not None:
        page = site.client.get(f"/api/runs/{run_id}/programs?limit=1000&after_id={after}"
                               "&count=false").json()
        items += page["items"]
        after = page["next_after"]
    return items


def _drawn(page: Page) -> dict:
    """Returns what the chart's canvas painted, as it counted it: dots per island, failed ticks."""
    canvas = page.locator("[data-testid=chart] canvas.chart-dots")
    return {"dots": json.loads(canvas.get_attribute("data-islands")),
            "failed": int(canvas.get_attribute("data-failed"))}


def _x_ticks(page: Page) -> list[float]:
    texts = page.eval_on_selector_all("[data-testid=chart] g.x-axis .tick text",
                                      "els => els.map((e) => e.textContent)")
    return [float(t.replace("\u2212", "-").replace(",", "")) for t in texts]


def test_every_evaluated_program_is_a_dot_and_every_failed_one_a_tick(
        site: Site, page: Page) -> None:
    run_id = site.new_run(iterations=6, answers=(12, "1/0", 4, 9, "2/0", 10))
    site.drive(run_id)
    programs = [p for p in _programs(site, run_id) if p["kind"] not in COPIES]
    scored = [p for p in programs if p["status"] == "ok"]
    failed = [p for p in programs if p["status"] == "failed"]
    assert len(failed) == 2 and len(scored) >= 4
    page.goto(f"{site.url}/#/run/{run_id}")
    expect(page.locator("[data-testid=dot-count]")).to_have_text(str(len(scored) + len(failed)))
    drawn = _drawn(page)
    per_island = {str(i): sum(p["island"] == i for p in scored)
                  for i in {p["island"] for p in scored}}
    assert drawn == {"dots": per_island, "failed": len(failed)}


def test_a_run_that_never_improved_spans_its_iterations(site: Site, page: Page) -> None:
    run_id = site.new_run(iterations=6, answers=(0, -3, "1/0", 0.5, -1, 20), islands=1)
    site.drive(run_id)
    run = site.client.get(f"/api/runs/{run_id}").json()
    assert run["best_score"] == run["initial_score"] and run["iterations"] == 6
    page.goto(f"{site.url}/#/run/{run_id}")
    expect(page.locator("[data-testid=chart] canvas.chart-dots")).to_have_count(1)
    ticks = _x_ticks(page)
    assert min(ticks) == 0 and max(ticks) == run["iterations"], ticks
    evaluated = [p for p in _programs(site, run_id)
                 if p["status"] in EVALUATED and p["kind"] not in COPIES]
    drawn = _drawn(page)
    assert sum(drawn["dots"].values()) + drawn["failed"] == len(evaluated)
    shoot(page, "run_never_improved")


def test_islands_table_and_map_elites_grids_list_the_same_islands(
        site: Site, page: Page) -> None:
    run_id = site.new_run(iterations=2, islands=3)  # too short for a migration to fill them all
    site.drive(run_id)
    counts = [i["programs"] for i in site.client.get(f"/api/ui/runs/{run_id}/islands").json()]
    assert len(counts) == 3 and 0 in counts  # an island without programs still has its row
    page.goto(f"{site.url}/#/run/{run_id}")
    rows = page.locator("[data-testid=islands] tbody tr")
    grids = page.locator("[data-testid=maps] .map")
    expect(grids).to_have_count(3)
    expect(rows).to_have_count(3)
    listed = [rows.nth(i).get_attribute("data-island") for i in range(3)]
    drawn = [grids.nth(i).get_attribute("data-island") for i in range(3)]
    assert listed == drawn == ["0", "1", "2"]


def test_a_large_run_is_paged_and_drawn_whole(site: Site, page: Page) -> None:
    run_id = site.new_run(start=False)
    n = 25_000  # more than one /scores page (20 000)
    rows = [{"run_id": run_id, "island": i % 2, "iteration": i // 2, "kind": "mutation",
             "code": "x", "code_hash": hashlib.sha256(str(i).encode()).hexdigest(),
             "status": "failed" if i % 50 == 7 else "ok",
             "score": None if i % 50 == 7 else float(i % 97)} for i in range(n)]
    with site.db.session() as s:
        s.execute(insert(ProgramRow), rows)
        s.execute(update(RunRow).where(RunRow.id == run_id).values(iterations=n // 2))
    first = site.client.get(f"/api/runs/{run_id}/scores").json()
    assert first["total"] == n and len(first["ids"]) == 20_000 and first["next_after"]
    rest = site.client.get(f"/api/runs/{run_id}/scores?after_id={first['next_after']}").json()
    assert len(rest["ids"]) == n - 20_000 and rest["next_after"] is None
    assert set(first["ids"]).isdisjoint(rest["ids"])
    started = time.monotonic()
    page.goto(f"{site.url}/#/run/{run_id}")
    expect(page.locator("[data-testid=dot-count]")).to_have_text(str(n))
    print(f"\n{n} programs: page drawn in {time.monotonic() - started:.2f} s")
    ok = [r["island"] for r in rows if r["status"] == "ok"]
    assert _drawn(page) == {"dots": {"0": ok.count(0), "1": ok.count(1)}, "failed": n - len(ok)}
    assert max(_x_ticks(page)) <= n // 2
