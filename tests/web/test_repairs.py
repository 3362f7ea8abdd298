"""The UI never hides a repaired answer: the program page and the run page name the repairs."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.web.conftest import Site, shoot

UNFENCED = "Sure! Here is the code:\ndef value():\n    return 9\nIt is closer to 10."
DOUBLED = "```python\n```python\ndef value():\n    return 8\n```"  # a doubled opening fence


def test_program_and_run_pages_name_the_repairs_of_the_answer(site: Site, page: Page) -> None:
    run_id = site.new_run(iterations=2, islands=1, texts=[UNFENCED, DOUBLED])
    site.drive(run_id)
    items = site.client.get(f"/api/runs/{run_id}/programs?kind=mutation").json()["items"]
    assert len(items) == 2
    for prog in items:
        detail = site.client.get(f"/api/programs/{prog['id']}").json()
        page.goto(f"{site.url}/#/program/{prog['id']}")
        expect(page.locator("[data-testid=llm-meta]")).to_be_visible()
        words = ", ".join(detail["repair"].split("+"))
        expect(page.locator("[data-testid=llm-repair]")).to_contain_text(words)
    shoot(page, "program_repaired")
    page.goto(f"{site.url}/#/run/{run_id}")
    repairs = page.locator("[data-testid=repairs]")
    expect(repairs).to_contain_text("fence+strip_prose: 1")
    expect(repairs).to_contain_text("fence: 1")


def test_an_answer_read_as_written_shows_no_repair(site: Site, page: Page) -> None:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    page.goto(f"{site.url}/#/program/{best}")
    expect(page.locator("[data-testid=llm-meta]")).to_be_visible()
    expect(page.locator("[data-testid=llm-repair]")).to_have_count(0)
    page.goto(f"{site.url}/#/run/{site.run_id}")
    expect(page.locator("[data-testid=outcomes]")).to_be_visible()
    expect(page.locator("[data-testid=repairs]")).to_have_count(0)
