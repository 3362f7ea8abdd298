"""`problems check` on one fixture folder per defect: each names the file and the fix."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from service.execution.check import check_problem
from tests.conftest import REPO

PROBLEMS = REPO / "tests" / "fixtures" / "problems"

# folder -> (file the defect names, words in the message, words in the fix)
CASES = {
    "no_markers": ("initial_program", ["no '# EVOLVE-BLOCK-START'", "in any file"],
                   ["put the lines to evolve"]),  # a folder program (a file evolves whole)
    "unknown_key": ("problem.toml", ["unknown key(s) ['score_metrc']"], ["score_metric"]),
    "import_error": ("evaluator.py", ["import failed", "No module named 'not_a_real_module_xyz'",
                                      "evaluator.py:3"], ["install the missing module"]),
    "no_evaluate": ("evaluator.py", ["defines no evaluate(program_path)"], ["def evaluate("]),
    "wrong_return_type": ("evaluator.py", ["evaluate() returned list"], ["return a dict"]),
    "nonfinite_metric": ("evaluator.py", ["combined_score = nan", "finite"], ["finite numbers"]),
    "missing_score": ("evaluator.py", ["no 'combined_score' metric", "accuracy, runtime"],
                      ["add 'combined_score'", "set score_metric in problem.toml"]),
    "failing_program": ("initial_program.py", ["ZeroDivisionError: division by zero",
                                               "initial_program.py:5"], ["fix the error shown"]),
    "slow_program": ("initial_program.py", ["exceeded 1.5 s wall clock"],
                     ["raise timeout_s in the [run.evaluation] table of problem.toml"]),
    "hungry_program": ("initial_program.py", ["ran out of memory", "256 MiB"],
                       ["raise memory_mb", "RUN.toml given with --config", "8192"]),
}


@pytest.mark.parametrize("folder", sorted(CASES))
def test_each_defect_names_the_file_and_the_fix(folder: str) -> None:
    report = check_problem(PROBLEMS / folder)
    file, message_words, fix_words = CASES[folder]
    assert not report.ok and len(report.defects) == 1
    defect = report.defects[0]
    assert Path(defect.file) == PROBLEMS / folder / file
    for word in message_words:
        assert word in defect.message
    for word in fix_words:
        assert word in defect.fix
    text = report.render()
    assert defect.message in text and f"fix: {defect.fix}" in text
    assert "evaluators/" not in text and "service/" not in text  # nothing of evoforge's own code


def test_a_file_without_markers_passes_and_the_report_says_it_evolves_whole(
        tmp_path: Path) -> None:
    for name in ("evaluator.py", "problem.toml"):
        (tmp_path / name).write_text((PROBLEMS / "good" / name).read_text())
    (tmp_path / "initial_program.py").write_text("def solve():\n    return 1.0\n")
    report = check_problem(tmp_path)
    assert report.ok and report.result.score == 1.0
    assert "no '# EVOLVE-BLOCK-START' / '# EVOLVE-BLOCK-END' markers, so the whole file " \
           "evolves" in report.render()


def test_a_score_that_is_the_mean_of_several_metrics_is_a_warning_naming_them_and_the_fix(
        tmp_path: Path) -> None:
    (tmp_path / "config.yaml").write_text("max_iterations: 3\n")
    (tmp_path / "initial_program.py").write_text(
        "# EVOLVE-BLOCK-START\ndef solve():\n    return 1.0\n# EVOLVE-BLOCK-END\n")
    (tmp_path / "evaluator.py").write_text(
        "def evaluate(path):\n    return {'overall': 0.5, 'slope_changes': 66.0}\n")
    report = check_problem(tmp_path)
    assert report.ok and report.result.score == 33.25
    assert report.warnings == [
        ("the score is the mean of 2 metrics (overall, slope_changes), as OpenEvolve scores a "
        "result without combined_score; if one of them is what to maximise, name it: "
        "score_metric = '...' under [problem] in problem.toml (beside a config.yaml it adds to "
        "it), and direction = 'minimize' for a cost")]
    (tmp_path / "problem.toml").write_text('[problem]\nscore_metric = "overall"\n')
    named = check_problem(tmp_path)
    assert named.ok and named.result.score == 0.5 and named.warnings == []


def test_good_problem_passes_and_reports_its_score() -> None:
    report = check_problem(PROBLEMS / "good")
    assert report.ok and report.defects == [] and report.result.score == 1.0
    assert "OK: the initial program scored 1 (combined_score)" in report.render()


def test_problem_code_never_runs_in_the_checking_process() -> None:
    before = set(sys.modules)
    check_problem(PROBLEMS / "good")
    check_problem(PROBLEMS / "import_error")
    assert {"evaluator", "candidate"} & (set(sys.modules) - before) == set()


def test_missing_folder_is_a_defect_not_an_exception(tmp_path: Path) -> None:
    report = check_problem(tmp_path / "nowhere")
    assert not report.ok and "not a folder" in report.defects[0].message
    assert "give the path of a problem folder" in report.defects[0].fix
