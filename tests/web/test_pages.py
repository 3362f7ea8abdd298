"""Each page loads without console errors and shows what the database holds."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import delete, update

from service.db.models import AdapterRow, ProgramRow
from tests.web.conftest import Site, shoot


def _improvements(site: Site, run_id: int) -> int:
    """Counts the strict improvements of the best score over the run's scored programs, by id."""
    items = site.client.get(f"/api/runs/{run_id}/programs?status=ok&limit=500").json()["items"]
    best, n = None, 0
    for p in sorted(items, key=lambda p: p["id"]):
        if p["score"] is not None and (best is None or p["score"] > best):
            best, n = p["score"], n + 1
    return n


def test_runs_page_lists_the_run_with_its_best_score(site: Site, page: Page) -> None:
    run = site.client.get(f"/api/runs/{site.run_id}").json()
    page.goto(f"{site.url}/#/runs")
    row = page.locator(f"tr[data-run='{site.run_id}']")
    expect(row).to_contain_text("completed")
    expect(row).to_contain_text(f"#{run['best_program_id']}")
    expect(row).to_contain_text(str(run["prompt_tokens"] + run["completion_tokens"]))
    shoot(page, "runs")


def test_run_chart_has_one_point_per_improvement(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/#/run/{site.run_id}")
    points = page.locator("[data-testid=chart] g.series.overall circle.point")
    expected = _improvements(site, site.run_id)
    assert expected >= 3  # the scripted answers improve 1 -> 3 -> 7 -> 9 -> 10
    expect(points).to_have_count(expected)
    islands = site.client.get(f"/api/runs/{site.run_id}/timeline").json()["islands"]
    expect(page.locator("[data-testid=chart] g.series.island")).to_have_count(len(islands))
    expect(page.locator("[data-testid=islands] tbody tr")).to_have_count(2)
    usage = site.client.get(f"/api/runs/{site.run_id}/llm-usage").json()["outcomes"]
    assert sum(usage.values()) == 8
    for outcome, n in usage.items():
        expect(page.locator("[data-testid=outcomes]")).to_contain_text(f"{outcome}: {n}")
    shoot(page, "run")


def test_clicking_a_map_elites_cell_opens_its_elite(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/#/run/{site.run_id}")
    cell = page.locator("[data-testid=maps] rect.cell").first
    elite = cell.get_attribute("data-program")
    cell.click()
    expect(page.locator("[data-testid=program-title]")).to_contain_text(f"Program {elite}")


def test_program_page_shows_code_diff_path_and_llm_call(site: Site, page: Page) -> None:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    page.goto(f"{site.url}/#/program/{best}")
    expect(page.locator("[data-testid=code]")).to_contain_text("return 10")
    expect(page.locator("[data-testid=code] .hljs-keyword").first).to_be_visible()
    expect(page.locator("[data-testid=diff] .d2h-ins .d2h-code-line-ctn").first).to_contain_text(
        "return 10")
    chain = site.client.get(f"/api/programs/{best}/ancestors").json()
    expect(page.locator("[data-testid=lineage-path] tbody tr")).to_have_count(len(chain))
    sample = site.client.get(f"/api/ui/programs/{best}/sample").json()
    meta = page.locator("[data-testid=llm-meta]")
    expect(meta).to_contain_text(f"model {sample['model']}")
    expect(meta).to_contain_text(f"{sample['prompt_tokens']} prompt + "
                                 f"{sample['completion_tokens']} completion tokens")
    shoot(page, "program")


def test_compare_pages_show_a_side_by_side_diff_and_two_curves(site: Site, page: Page) -> None:
    items = site.client.get(f"/api/runs/{site.run_id}/programs?status=ok&limit=2").json()["items"]
    a, b = items[0]["id"], items[1]["id"]
    page.goto(f"{site.url}/#/compare/programs/{a}/{b}")
    expect(page.locator("[data-testid=diff] .d2h-file-side-diff")).to_have_count(2)
    shoot(page, "compare_programs")
    other = site.new_run(iterations=3)
    site.drive(other)
    page.goto(f"{site.url}/#/compare/runs/{site.run_id}/{other}")
    expect(page.locator("[data-testid=chart] g.series")).to_have_count(2)
    expect(page.locator("[data-testid=chart] g.run-b circle.point")).to_have_count(
        _improvements(site, other))
    shoot(page, "compare_runs")


def test_a_write_token_stops_a_queued_run_from_the_runs_page(site: Site, page: Page) -> None:
    run_id = site.new_run(start=False)
    page.goto(f"{site.url}/#/runs")
    page.locator(f"button[data-action=start][data-run='{run_id}']").click()
    row = page.locator(f"tr[data-run='{run_id}']")
    expect(row).to_contain_text("queued")
    row.locator("button[data-action=stop]").click()
    expect(row).to_contain_text("stopped")
    assert site.client.get(f"/api/runs/{run_id}").json()["status"] == "stopped"


def test_a_page_without_a_token_asks_for_one(site: Site, bare_page: Page) -> None:
    page = bare_page
    page.goto(f"{site.url}/#/runs")
    expect(page.locator("[data-testid=error]")).to_contain_text("Enter an API token")
    page.fill("#token-input", site.secret)
    page.click("#token-form button")
    expect(page.locator(f"tr[data-run='{site.run_id}']")).to_be_visible()


def test_the_chart_marks_an_adapter_version_where_its_first_program_appears(
        site: Site, page: Page) -> None:
    p = ProgramRow
    with site.db.session() as s:
        s.add(AdapterRow(run_id=site.run_id, name="tiny-v1", version=1, base_model="m", path="/x"))
        s.execute(update(p).where(p.run_id == site.run_id, p.iteration >= 3)
                  .values(adapter="tiny-v1"))
    try:
        got = site.client.get(f"/api/ui/runs/{site.run_id}/adapters").json()
        assert [(a["version"], a["first_iteration"]) for a in got] == [(1, 3)]
        page.goto(f"{site.url}/#/run/{site.run_id}")
        expect(page.locator("[data-testid=chart] g.mark")).to_have_count(1)
        expect(page.locator("[data-testid=chart] g.mark text")).to_have_text("adapter v1")
    finally:
        with site.db.session() as s:
            s.execute(update(p).where(p.run_id == site.run_id).values(adapter=None))
            s.execute(delete(AdapterRow).where(AdapterRow.run_id == site.run_id))
