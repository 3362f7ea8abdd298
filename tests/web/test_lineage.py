"""The lineage graph: every program drawn for a small run, the best path marked, nodes open
their program with the diff against the parent."""

from __future__ import annotations

from playwright.sync_api import Page, expect
from sqlalchemy import update

from service.db.models import ProgramRow
from tests.web.conftest import Site, shoot


def test_lineage_graph_draws_every_program_and_the_best_path(site: Site, page: Page) -> None:
    programs = site.client.get(f"/api/runs/{site.run_id}/genealogy").json()["items"]
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    path = [p["id"] for p in site.client.get(f"/api/programs/{best}/ancestors").json()]
    page.goto(f"{site.url}/#/lineage/{site.run_id}")
    expect(page.locator("[data-testid=lineage] g.node")).to_have_count(len(programs))
    expect(page.locator("[data-testid=lineage] g.node.on-path")).to_have_count(len(path))
    expect(page.locator("[data-testid=lineage] path.best-path")).to_have_count(len(path) - 1)
    shoot(page, "lineage")


def test_clicking_a_node_opens_its_program_with_the_right_diff(site: Site, page: Page) -> None:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    detail = site.client.get(f"/api/programs/{best}").json()
    added = [ln[1:].strip() for ln in detail["diff"].splitlines()
             if ln.startswith("+") and not ln.startswith("+++") and ln[1:].strip()]
    removed = [ln[1:].strip() for ln in detail["diff"].splitlines()
               if ln.startswith("-") and not ln.startswith("---") and ln[1:].strip()]
    assert added and removed
    page.goto(f"{site.url}/#/lineage/{site.run_id}")
    page.locator(f"g.node[data-program='{best}'] circle").click()
    expect(page.locator("[data-testid=program-title]")).to_contain_text(f"Program {best}")
    ins = " ".join(page.locator("[data-testid=diff] .d2h-ins .d2h-code-line-ctn").all_inner_texts())
    dels = " ".join(page.locator("[data-testid=diff] .d2h-del .d2h-code-line-ctn")
                    .all_inner_texts())
    assert all(line in ins for line in added), (added, ins)
    assert all(line in dels for line in removed), (removed, dels)


def test_a_large_run_shows_the_best_lineages_first_and_loads_more(site: Site, page: Page) -> None:
    total = len(site.client.get(f"/api/runs/{site.run_id}/genealogy").json()["items"])
    top1 = site.client.get(f"/api/ui/runs/{site.run_id}/top-lineages?k=1").json()
    assert len(top1["nodes"]) == len(top1["best_path"]) < total
    page.goto(f"{site.url}/#/lineage/{site.run_id}")
    count = page.locator("[data-testid=lineage-count]")
    expect(count).to_contain_text(f"of {total} programs")
    expect(page.locator("#more")).to_be_disabled()  # 20 best already cover this small run


def test_a_parent_that_left_the_archive_is_still_drawn(site: Site, page: Page) -> None:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    parent = site.client.get(f"/api/programs/{best}").json()["parent_id"]
    with site.db.session() as s:
        s.execute(update(ProgramRow).where(ProgramRow.id == parent).values(in_archive=False))
    try:
        page.goto(f"{site.url}/#/lineage/{site.run_id}")
        expect(page.locator(f"g.node.evicted.on-path[data-program='{parent}']")).to_have_count(1)
    finally:
        with site.db.session() as s:
            s.execute(update(ProgramRow).where(ProgramRow.id == parent).values(in_archive=True))
