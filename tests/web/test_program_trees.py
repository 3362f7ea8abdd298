"""A run of problems/quickstart_files (a program of three files) in the browser: the program page
lists the files and shows the chosen one, the parent diff and the compare page go per file, and
the lineage graph opens a node's files; a single-file program keeps its one code block."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.service.api.test_program_trees import quickstart_files, rewrite
from tests.web.conftest import Site, shoot

ANSWERS = [rewrite("line.py", "def line(x):\n    return 1.0 * x + 1.0"),
           rewrite("bend.py", "def bend(x):\n    return 0.8 * x * x")]


@pytest.fixture(scope="module")
def tree_run(site: Site) -> int:
    """Returns a finished 2-iteration run of quickstart_files whose scripted model rewrites
    line.py, then bend.py."""
    r = site.client.post("/api/problems", json={"files": quickstart_files()})
    assert r.status_code == 201, r.text
    problem_id = site.visible(f"/api/problems/{r.json()['id']}")["id"]
    run_id = site.new_run(iterations=2, islands=1, problem_id=problem_id, texts=ANSWERS)
    site.drive(run_id)
    return run_id


def _best(site: Site, run_id: int) -> dict:
    best = site.client.get(f"/api/runs/{run_id}").json()["best_program_id"]
    prog = site.client.get(f"/api/programs/{best}").json()
    assert prog["parent_id"] is not None, "the scripted edits must improve on the initial program"
    return prog


def test_a_folder_program_shows_its_files_and_a_diff_per_file(site: Site, tree_run: int,
                                                             page: Page) -> None:
    prog = _best(site, tree_run)
    changed = [d["path"] for d in prog["file_diffs"] if d["change"] != "unchanged"]
    same = [d["path"] for d in prog["file_diffs"] if d["change"] == "unchanged"]
    assert changed and same
    page.goto(f"{site.url}/#/program/{prog['id']}")
    files = page.locator("[data-testid=file-list] button[data-file]")
    expect(files).to_have_text(["bend.py", "curve.py", "line.py"])
    expect(page.locator("[data-testid=code]")).to_have_count(0)
    shown = page.locator(".file-code:visible [data-testid=file-code]")
    expect(shown).to_have_count(1)
    expect(shown).to_contain_text("def bend(x)")
    page.locator("[data-testid=file-list] button[data-file='line.py']").click()
    expect(shown).to_have_count(1)
    expect(shown).to_contain_text("return 1.0 * x + 1.0")
    diffs = page.locator("[data-testid=diff] [data-testid=file-diff]")
    expect(diffs).to_have_count(len(changed))
    for path in changed:
        block = page.locator(f"[data-testid=file-diff][data-path='{path}']")
        expect(block.locator(".d2h-file-name")).to_have_text(path)
        expect(block.locator(".d2h-ins").first).to_be_visible()
    expect(page.locator("[data-testid=unchanged-files]")).to_have_text(
        "Unchanged: " + ", ".join(same))
    shoot(page, "program_tree")


def test_comparing_folder_programs_goes_file_by_file(site: Site, tree_run: int,
                                                    page: Page) -> None:
    prog = _best(site, tree_run)
    initial = site.client.get(f"/api/runs/{tree_run}/programs?kind=initial").json()["items"][0]
    got = site.client.get(f"/api/ui/programs/{initial['id']}/compare/{prog['id']}").json()
    changed = [d["path"] for d in got["files"] if d["change"] == "changed"]
    assert "line.py" in changed
    page.goto(f"{site.url}/#/compare/programs/{initial['id']}/{prog['id']}")
    for path in changed:
        block = page.locator(f"[data-testid=file-diff][data-path='{path}']")
        expect(block.locator(".d2h-file-side-diff")).to_have_count(2)
    expect(page.locator("[data-testid=file-diff]")).to_have_count(len(changed))
    expect(page.locator("[data-testid=unchanged-files]")).to_contain_text("curve.py")
    shoot(page, "compare_program_trees")


def test_a_lineage_node_opens_its_files(site: Site, tree_run: int, page: Page) -> None:
    prog = _best(site, tree_run)
    page.goto(f"{site.url}/#/lineage/{tree_run}")
    page.locator(f"g.node[data-program='{prog['id']}'] circle").click()
    expect(page.locator("[data-testid=program-title]")).to_contain_text(f"Program {prog['id']}")
    expect(page.locator("[data-testid=file-list] button[data-file]")).to_have_count(3)


def test_a_single_file_program_keeps_one_code_block(site: Site, page: Page) -> None:
    best = site.client.get(f"/api/runs/{site.run_id}").json()["best_program_id"]
    page.goto(f"{site.url}/#/program/{best}")
    expect(page.locator("[data-testid=code]")).to_contain_text("def value")
    expect(page.locator("[data-testid=file-list]")).to_have_count(0)
    expect(page.locator("[data-testid=file-diff]")).to_have_count(0)
