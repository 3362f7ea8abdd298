"""The run page follows a run live through server-sent events."""

from __future__ import annotations

import threading

from playwright.sync_api import Page, expect

from tests.web.conftest import Site, shoot


def test_run_page_updates_live_while_the_run_progresses(site: Site, page: Page) -> None:
    run_id = site.new_run(iterations=6)
    page.goto(f"{site.url}/#/run/{run_id}")
    expect(page.locator("[data-testid=run-iterations]")).to_contain_text("0 / 6")
    expect(page.locator("[data-testid=live]")).to_have_attribute("data-events", "1")
    driver = threading.Thread(target=site.drive, args=(run_id,))
    driver.start()
    try:
        expect(page.locator("[data-testid=live]")).to_have_attribute("data-ended", "1",
                                                                      timeout=60_000)
    finally:
        driver.join(timeout=120)
    expect(page.locator("[data-testid=run-status]")).to_contain_text("completed")
    expect(page.locator("[data-testid=run-iterations]")).to_contain_text("6 / 6")
    events = int(page.locator("[data-testid=live]").get_attribute("data-events"))
    assert events >= 1 + 7  # the first snapshot, then at least 7 programs (initial + 6)
    points = site.client.get(f"/api/runs/{run_id}/timeline").json()["overall"]
    expect(page.locator("[data-testid=chart] g.series.overall circle.point")).to_have_count(
        len(points))
    shoot(page, "run_live")
