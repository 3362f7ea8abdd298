"""What the UI shows of an OpenEvolve-style evaluator: the errors it reports beside a score (run
page and program page), and the tier of a noisy score that re-verification found."""

from __future__ import annotations

import json

from playwright.sync_api import Page, expect

from service.catalog import ServedModel
from tests.service.api.conftest import tiny_files
from tests.web.conftest import Site

# the tiny problem's evaluator, noisy, and reporting an error (OpenEvolve's `error` metric)
# for values far from 10
EVALUATOR = """import importlib.util
import random


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    v = float(mod.value())
    out = {"combined_score": -abs(v - 10.0) + 1e-3 * random.random()}
    if abs(v - 10.0) > 5:
        out["error"] = f"value {v} is far from 10"
    return out
"""


def test_reported_errors_and_a_noisy_tier_show_on_the_run_and_program_pages(
        site: Site, page: Page) -> None:
    files = tiny_files() | {"evaluator.py": EVALUATOR}
    r = site.client.post("/api/problems", json={"files": files})
    assert r.status_code == 201, r.text
    answers = site.tmp / "noisy_answers.json"  # a model the operator names
    site.settings.models["noisy_answers"] = ServedModel(backend="scripted", model=str(answers))
    answers.write_text(json.dumps(["```python\ndef value():\n    return 3\n```\n",
                                   "```python\ndef value():\n    return 9\n```\n"]))
    r = site.client.post("/api/runs", json={"problem_id": r.json()["id"], "start": True, "config": {
        "llm": {"use": "noisy_answers"}, "budget": {"iterations": 2},
        "evaluation": {"reverify_top_k": 1}}})
    assert r.status_code == 201, r.text
    run_id = site.visible(f"/api/runs/{r.json()['id']}")["id"]
    site.drive(run_id)
    page.goto(f"{site.url}/#/run/{run_id}")
    reported = page.locator("[data-testid=reported-errors]")
    expect(reported).to_contain_text("the evaluator reported an error: 2")  # the initial and 3
    items = site.client.get(f"/api/runs/{run_id}/programs?kind=mutation").json()["items"]
    far = next(p for p in items if p["score"] is not None and p["score"] < -5)
    page.goto(f"{site.url}/#/program/{far['id']}")
    expect(page.locator("[data-testid=reported-error]")).to_contain_text(
        "value 3.0 is far from 10")
    best = site.client.get(f"/api/runs/{run_id}").json()["best_program_id"]
    page.goto(f"{site.url}/#/program/{best}")
    expect(page.locator("[data-testid=tier]")).to_contain_text("re-evaluated (stochastic, sd ")
