"""The two-phase problem form in problem.toml, and what `evoforge problems check` says about it."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.execution.check import check_problem
from service.problems.load import ProblemError, load_problem
from tests.service.evolution.test_reverify import SCORER, two_phase_problem


def with_toml(folder: Path, old: str, new: str) -> Path:
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace(old, new))
    return folder


def test_two_phase_problem_needs_no_evaluator_file(tmp_path: Path) -> None:
    problem = load_problem(two_phase_problem(tmp_path / "p"))
    assert problem.two_phase and problem.entry == "construct"
    assert problem.scorer_path == problem.evaluator_path == tmp_path / "p" / "scorer.py"


@pytest.mark.parametrize(("old", "new", "message"), [
    ('entry = "construct"\n', "", "sets scorer but not entry"),
    ('scorer = "scorer.py"\n', "", "sets entry but not scorer"),
    ('entry = "construct"', 'entry = "make it"', "'make it' is not a Python function name"),
    ('scorer = "scorer.py"', 'scorer = "judge.py"', "'judge.py': no such file"),
    ('scorer = "scorer.py"', 'scorer = "../outside.py"', "no such file in"),
])
def test_malformed_two_phase_declarations_are_named_with_the_fix(tmp_path: Path, old: str,
                                                                 new: str, message: str) -> None:
    (tmp_path / "outside.py").write_text(SCORER)
    folder = with_toml(two_phase_problem(tmp_path / "p"), old, new)
    with pytest.raises(ProblemError, match=message):
        load_problem(folder)


def test_check_passes_a_good_two_phase_problem(tmp_path: Path) -> None:
    report = check_problem(two_phase_problem(tmp_path / "p"))
    assert report.ok, report.render()
    assert "OK: the initial program scored -9" in report.render()


def test_check_names_a_scorer_without_score_and_the_fix(tmp_path: Path) -> None:
    folder = two_phase_problem(tmp_path / "p")
    (folder / "scorer.py").write_text("def judge(data):\n    return {}\n")
    report = check_problem(folder)
    assert not report.ok and report.defects[0].file == str(folder / "scorer.py")
    assert "defines no score(data)" in report.defects[0].message
    assert "def score(data):" in report.defects[0].fix


def test_check_names_initial_data_the_scorer_rejects(tmp_path: Path) -> None:
    folder = two_phase_problem(tmp_path / "p")
    program = folder / "initial_program.py"
    program.write_text(program.read_text().replace("return [value()]", "return [value(), 2]"))
    report = check_problem(folder)
    assert not report.ok and report.defects[0].file == str(program)
    assert "construct() must return [a number]" in report.defects[0].message
    assert report.defects[0].fix == "make construct() return data that scorer.py accepts"


def test_check_names_cascade_thresholds_a_two_phase_problem_cannot_use(tmp_path: Path) -> None:
    folder = with_toml(two_phase_problem(tmp_path / "p"), "timeout_s = 10",
                       "timeout_s = 10\ncascade_thresholds = [0.5]")
    report = check_problem(folder)
    assert not report.ok and report.defects[0].file == str(folder / "problem.toml")
    assert "no cascade stages" in report.defects[0].message
