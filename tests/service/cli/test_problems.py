"""`evoforge problems check` as a user runs it: a good folder passes, a broken one names the file
and the fix."""

from __future__ import annotations

import json
from pathlib import Path

from tests.service.cli.test_run import evoforge
from tests.service.engine_helpers import tiny_problem


def test_problems_check_passes_good_and_fails_bad(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    assert evoforge("problems", "check", str(folder), home=tmp_path).returncode == 0
    (folder / "evaluator.py").write_text("import not_a_module\n")
    proc = evoforge("problems", "check", str(folder), home=tmp_path, check=False)
    assert proc.returncode == 1 and "evaluator.py" in proc.stdout
    assert "not_a_module" in proc.stdout and "fix:" in proc.stdout
    assert "/service/" not in proc.stdout + proc.stderr  # no traceback from evoforge itself
    assert "evaluators/harness" not in proc.stdout + proc.stderr


def test_problems_list_names_the_shipped_problems_which_run_by_name(tmp_path: Path) -> None:
    listed = json.loads(evoforge("problems", "list", "--json", home=tmp_path).stdout)
    assert {"quickstart", "circle_packing"} <= {p["name"] for p in listed}
    assert all(p["description"] and p["direction"] in ("maximize", "minimize") for p in listed)
    table = evoforge("problems", "list", home=tmp_path).stdout
    assert "quickstart" in table and "combined_score (maximize)" in table
    checked = evoforge("problems", "check", "quickstart", home=tmp_path)
    assert "OK: the initial program scored" in checked.stdout
    missing = evoforge("problems", "check", "no_such_problem", home=tmp_path, check=False)
    assert missing.returncode == 1 and "evoforge problems list" in missing.stdout + missing.stderr
