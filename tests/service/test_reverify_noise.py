"""Re-verification that tells a noisy evaluator from a wrong score, in the real sandbox."""

from __future__ import annotations

from pathlib import Path

from service.config import build_run_config
from service.evolution.reverify import AUTO_REPEATS, verify_code
from service.problems.load import load_problem

PROGRAM = '''"""Return a number near 1."""
# EVOLVE-BLOCK-START
def value():
    return 1.0
# EVOLVE-BLOCK-END
'''
EVALUATOR = '''import importlib.util
import random


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": module.value() + NOISE * random.random()}
'''


def problem(tmp_path: Path, noise: float, evaluation: str = "") -> tuple:
    """Returns (problem, run config) of a problem whose evaluator adds uniform noise * [0, 1)."""
    folder = tmp_path / "p"
    folder.mkdir()
    (folder / "initial_program.py").write_text(PROGRAM)
    (folder / "evaluator.py").write_text(f"NOISE = {noise}\n" + EVALUATOR)
    (folder / "problem.toml").write_text(f"[run.evaluation]\ntimeout_s = 20\n{evaluation}")
    prob = load_problem(folder)
    return prob, build_run_config(prob.run_defaults)


def test_a_deterministic_score_that_reproduces_keeps_the_strict_check(tmp_path: Path) -> None:
    prob, cfg = problem(tmp_path, 0.0)
    verdict = verify_code(prob, cfg, 1, PROGRAM, 1.0)
    assert verdict.tier == "reevaluated" and verdict.label == "re-evaluated"
    assert verdict.verified_score == 1.0


def test_a_deterministic_score_that_does_not_reproduce_fails_after_the_reruns_agree(
        tmp_path: Path) -> None:
    prob, cfg = problem(tmp_path, 0.0)
    verdict = verify_code(prob, cfg, 1, PROGRAM, 1.5)
    assert verdict.tier == "failed" and verdict.verified_score == 1.0
    assert verdict.note == ("score not reproduced: evaluated 1.5, now 1.0 in each of "
                            f"{AUTO_REPEATS + 1} evaluations")


def test_a_noisy_score_is_reevaluated_with_mean_and_sd_not_failed(tmp_path: Path) -> None:
    prob, cfg = problem(tmp_path, 0.1)
    verdict = verify_code(prob, cfg, 1, PROGRAM, 1.0999)
    assert verdict.tier == "stochastic", verdict.note
    assert 1.0 <= verdict.verified_score < 1.1
    assert verdict.label.startswith("re-evaluated (stochastic, sd ")
    assert f"over {AUTO_REPEATS + 1} evaluations; evaluated 1.0999" in verdict.label


def test_declared_repeats_score_that_many_times_and_rel_tolerance_bounds_the_mean(
        tmp_path: Path) -> None:
    prob, cfg = problem(tmp_path, 0.1, "repeats = 3\n")
    verdict = verify_code(prob, cfg, 1, PROGRAM, 1.05)
    assert verdict.tier == "stochastic" and "over 3 evaluations" in verdict.note
    strict = build_run_config(cfg.model_dump(mode="json"),
                              {"evaluation": {"rel_tolerance": 1e-6}})
    far = verify_code(prob, strict, 1, PROGRAM, 5.0)
    assert far.tier == "failed" and "further from the evaluated score than rel_tolerance" in \
        far.note


def test_rel_tolerance_loosens_the_check_of_a_deterministic_score(tmp_path: Path) -> None:
    prob, cfg = problem(tmp_path, 0.0, "rel_tolerance = 0.001\n")
    assert verify_code(prob, cfg, 1, PROGRAM, 1.0005).tier == "reevaluated"
