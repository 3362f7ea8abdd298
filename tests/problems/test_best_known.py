"""Reference values that are current and checkable: every problem with a best_known says who found
it, where and when, the constraint slack it holds at (best_known_tolerance; 0.0 = exactly, which
is how every suite scorer checks), and whether we re-scored a public construction to it. The
constructions we hold (tests/fixtures/best_known/, data with their source) are re-scored here by
the problem's own strict scorer: a verified one must pass and give the recorded value (up to float
rounding of the recorded digits), an unverified one must fail as the note says, and a packing
recorded with a positive tolerance must pass once its radii give that tolerance up."""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from service.problems.load import Problem, ProblemError, load_problem

ROOT = Path(__file__).resolve().parents[2]
PROBLEMS = ROOT / "problems"
FIXTURES = ROOT / "tests" / "fixtures" / "best_known"
REFERENCED = sorted(p.name for p in PROBLEMS.iterdir() if (p / "problem.toml").is_file()
                    and load_problem(p).best_known is not None)
VERIFIED = [n for n in REFERENCED if load_problem(PROBLEMS / n).best_known_verified]
HELD_UNVERIFIED = [n for n in REFERENCED
                   if n not in VERIFIED and (FIXTURES / f"{n}.json").is_file()]


def scorer(problem: Problem) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"reference_{problem.name}", problem.scorer_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def construction(name: str) -> object:
    """Returns the held construction after the JSON round trip a two-phase program's data makes."""
    held = json.loads((FIXTURES / f"{name}.json").read_text())
    assert held["source"] and held["found_by"], f"{name}: a construction names where it is from"
    return held["data"]


def test_the_suite_has_references_and_some_are_verified() -> None:
    assert len(REFERENCED) >= 7 and len(VERIFIED) >= 3 and HELD_UNVERIFIED


@pytest.mark.parametrize("name", REFERENCED)
def test_reference_states_source_tolerance_and_verification(name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    assert problem.best_known_source and problem.best_known_tolerance is not None
    if problem.best_known_verified:
        assert problem.best_known_tolerance == 0.0  # the strict scorer accepted it as it is
        assert (FIXTURES / f"{name}.json").is_file() and name in problem.best_known_check
    else:
        assert problem.best_known_note, "an unverified reference says why"
    if problem.best_known_check:
        assert "tests/problems/test_best_known.py" in problem.best_known_check


@pytest.mark.parametrize("name", VERIFIED)
def test_verified_reference_rescores_to_its_recorded_value(name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    metrics = scorer(problem).score(construction(name))  # raises on any violation: no slack
    assert math.isclose(metrics[problem.score_metric], problem.best_known, rel_tol=1e-12,
                        abs_tol=0.0), (metrics[problem.score_metric], problem.best_known)


@pytest.mark.parametrize("name", HELD_UNVERIFIED)
def test_unverified_construction_is_rejected_by_the_strict_scorer(name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    assert problem.best_known_tolerance > 0, "a construction that fails holds only with slack"
    with pytest.raises(ValueError, match=r"outside|sticks out|overlap"):
        scorer(problem).score(construction(name))


def test_circle_packing_32_holds_once_its_radii_give_up_the_recorded_tolerance() -> None:
    problem = load_problem(PROBLEMS / "circle_packing_32")
    centers, radii = construction("circle_packing_32")
    slack = problem.best_known_tolerance
    assert math.fsum(radii) == problem.best_known
    metrics = scorer(problem).score([centers, [r - slack for r in radii]])
    assert problem.best_known - 32 * slack * 2 <= metrics["sum_radii"] < problem.best_known


@pytest.mark.parametrize(("lines", "fix"), [
    ('best_known = 1.0\nbest_known_tolerance = -1e-9\n', "number >= 0"),
    ('best_known = 1.0\nbest_known_tolerance = "tiny"\n', "number >= 0"),
    ('best_known = 1.0\nbest_known_verified = "yes"\n', "true or false"),
    ('best_known_verified = true\n', "which is not set"),
    ('best_known = 1.0\nbest_known_url = "x"\n', "unknown key(s) ['best_known_url']"),
])
def test_reference_keys_are_checked_when_a_problem_loads(lines: str, fix: str,
                                                         tmp_path: Path) -> None:
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "initial_program.py").write_text("# EVOLVE-BLOCK-START\nx = 1\n# EVOLVE-BLOCK-END\n")
    (folder / "evaluator.py").write_text("def evaluate(path):\n"
                                         "    return {'combined_score': 1.0}\n")
    (folder / "problem.toml").write_text(f'[problem]\nname = "p"\n{lines}')
    with pytest.raises(ProblemError, match=r"problem\.toml") as err:
        load_problem(folder)
    assert fix in str(err.value)


@pytest.mark.parametrize("name", [n for n in REFERENCED
                                  if load_problem(PROBLEMS / n).scorer_path is not None])
def test_the_scorer_quotes_the_reference_problem_toml_records(name: str) -> None:
    problem = load_problem(PROBLEMS / name)  # the scorer's feedback and ratios use its own copy
    assert getattr(scorer(problem), "BEST_KNOWN", problem.best_known) == problem.best_known
