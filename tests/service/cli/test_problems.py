"""`evoforge problems check` as a user runs it: a good folder passes, a broken one names the file
and the fix."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from tests.conftest import REPO
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


def test_problems_check_lists_a_folder_programs_files(tmp_path: Path) -> None:
    checked = evoforge("problems", "check", "bin_packing_files", home=tmp_path).stdout
    assert "program: a folder, initial_program/, of 3 files: order.py (EVOLVE-BLOCK), pack.py, " \
           "place.py (EVOLVE-BLOCK)" in checked
    assert "OK: the initial program scored 0.914877" in checked
    broken = shutil.copytree(REPO / "problems" / "bin_packing_files", tmp_path / "broken")
    order = broken / "initial_program" / "order.py"
    order.write_text("import not_a_module\n" + order.read_text())
    proc = evoforge("problems", "check", str(broken), home=tmp_path, check=False)
    assert proc.returncode == 1
    assert f"- {order}: the initial program failed" in proc.stdout  # the file, not the folder
    assert 'File "initial_program/order.py", line 1' in proc.stdout


def test_problems_check_scores_each_of_several_starting_programs(tmp_path: Path) -> None:
    folder = tiny_problem(tmp_path / "tiny")
    seed = (folder / "initial_program.py").read_text()
    (folder / "initial_program.py").unlink()
    (folder / "initial_programs").mkdir()
    (folder / "initial_programs" / "one.py").write_text(seed)
    (folder / "initial_programs" / "two.py").write_text(seed.replace("return 1", "return 4"))
    checked = evoforge("problems", "check", str(folder), home=tmp_path).stdout
    assert "program: one file, initial_programs/one.py (the first of 2 starting programs)" \
        in checked
    assert "2 starting programs, each scored:" in checked
    assert "- one: -9 (combined_score) in" in checked and "- two: -6 (combined_score) in" \
        in checked
    (folder / "initial_programs" / "three.py").write_text(seed.replace("return 1", "return 1/0"))
    proc = evoforge("problems", "check", str(folder), home=tmp_path, check=False)
    assert proc.returncode == 1 and "- three: failed (exception)" in proc.stdout
    assert f"- {folder / 'initial_programs' / 'three.py'}: the starting program 'three' " \
           "failed" in proc.stdout and "three.py:" in proc.stdout
