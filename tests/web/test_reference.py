"""The run page's header shows the problem's reference value, where it comes from, whether it was
verified, and how far the run's best is from it in the problem's direction."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.service.api.conftest import tiny_files
from tests.web.conftest import Site, shoot

REFERENCE = """best_known = {known}
best_known_source = "Ada Lovelace, a notebook, 2026"
best_known_tolerance = 0.0
best_known_verified = {verified}
best_known_note = "a caveat"
"""


def _problem_with_reference(site: Site, known: float, verified: bool) -> int:
    files = tiny_files()
    files["problem.toml"] = files["problem.toml"].replace(
        "[run.evaluation]", REFERENCE.format(known=known, verified=str(verified).lower())
        + "[run.evaluation]")
    r = site.client.post("/api/problems", json={"files": files})
    assert r.status_code == 201, r.text
    return site.visible(f"/api/problems/{r.json()['id']}")["id"]


@pytest.mark.parametrize(("known", "verified", "verdict", "how"), [
    (-3.0, True, "beats it by 2 (66.7%)", "verified"),
    (0.5, False, "is 1.5 (300%) short of it", "reported, not re-scored here"),
])
def test_run_header_shows_the_gap_to_the_reference(site: Site, page: Page, known: float,
                                                   verified: bool, verdict: str, how: str) -> None:
    problem_id = _problem_with_reference(site, known, verified)
    run_id = site.new_run(iterations=3, answers=(3, 9, 5), problem_id=problem_id)
    site.drive(run_id)
    got = site.client.get(f"/api/ui/runs/{run_id}/reference").json()
    assert got["best_score"] == -1.0 and got["gap"] == -1.0 - known
    assert got["source"] == "Ada Lovelace, a notebook, 2026" and got["verified"] is verified
    page.goto(f"{site.url}/#/run/{run_id}")
    header = page.locator("[data-testid=reference]")
    expect(header).to_contain_text(f"the best {verdict} (higher is better)")
    expect(header).to_contain_text(how)
    expect(header).to_contain_text("Ada Lovelace, a notebook, 2026")
    expect(header.locator(".beats" if known < -1 else ".short")).to_have_count(1)
    if verified:
        shoot(page, "run_reference")


def test_a_problem_without_reference_shows_no_reference_row(site: Site, page: Page) -> None:
    assert site.client.get(f"/api/ui/runs/{site.run_id}/reference").json() is None
    page.goto(f"{site.url}/#/run/{site.run_id}")
    expect(page.locator("[data-testid=run-status]")).to_be_visible()
    expect(page.locator("[data-testid=reference]")).to_have_count(0)
