"""`evoforge best RUN` says how far the run's best is from the problem's reference value, in the
problem's direction, and where that value comes from."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.engine_helpers import returns, tiny_problem

EVOFORGE = [sys.executable, "-m", "service.cli"]
MINIMIZE_EVALUATOR = """import importlib.util


def evaluate(program_path):
    spec = importlib.util.spec_from_file_location("candidate", program_path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return {"combined_score": abs(float(mod.value()) - 10.0)}
"""


def evoforge(*args: str, home: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "EVOFORGE_HOME": str(home), "COLUMNS": "400"}
    proc = subprocess.run([*EVOFORGE, *args], capture_output=True, text=True, env=env,
                          check=False, timeout=300)
    assert proc.returncode == 0, f"evoforge {args} -> {proc.returncode}\n{proc.stderr}"
    return proc


def run_tiny(tmp_path: Path, reference: str, minimize: bool = False) -> str:
    """Runs the tiny problem (best value() 9 after the scripted answers) with reference lines in
    its problem.toml; returns what `evoforge best 1` writes to stderr."""
    folder = tiny_problem(tmp_path / "tiny")
    toml = folder / "problem.toml"
    toml.write_text(toml.read_text().replace("[run.evaluation]", reference + "[run.evaluation]"))
    if minimize:  # the score is the distance to 10: lower is better
        (folder / "evaluator.py").write_text(MINIMIZE_EVALUATOR)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps([returns(v) for v in (4, 9, 11)]))
    home = tmp_path / "home"
    evoforge("run", str(folder), "--iterations", "3", "--llm", "scripted", "--model", str(answers),
             home=home)
    return evoforge("best", "1", "--out", str(tmp_path / "best.py"), home=home).stderr


@pytest.mark.parametrize(("minimize", "known", "verdict"), [
    (False, -2.0, "score -1.0 beats the reference by 1 (50% of it) (higher is better)"),
    (False, -0.5, "score -1.0 is 0.5 (100% of it) short of the reference (higher is better)"),
    (True, 0.5, "score 1.0 is 0.5 (100% of it) short of the reference (lower is better)"),
    (True, 2.0, "score 1.0 beats the reference by 1 (50% of it) (lower is better)"),
])
def test_best_prints_the_gap_to_the_reference_in_the_problems_direction(
        tmp_path: Path, minimize: bool, known: float, verdict: str) -> None:
    direction = 'direction = "minimize"\n' if minimize else ""
    stderr = run_tiny(tmp_path, f'{direction}best_known = {known}\nbest_known_source = '
                      '"Ada, a notebook, 2026"\nbest_known_tolerance = 0.0\n'
                      'best_known_verified = true\n', minimize)
    assert f"gap: {verdict}" in stderr, stderr
    assert (f"reference {known!r} (verified: a public construction re-scores to it; holds at "
            "tolerance 0) from Ada, a notebook, 2026") in stderr, stderr


def test_best_says_when_the_reference_was_only_reported(tmp_path: Path) -> None:
    stderr = run_tiny(tmp_path, 'best_known = -1.0\nbest_known_source = "a leaderboard"\n')
    assert "reference -1.0 (reported, not re-scored here) from a leaderboard" in stderr
    assert "gap: score -1.0 equals the reference (higher is better)" in stderr


def test_best_without_a_reference_prints_no_gap(tmp_path: Path) -> None:
    stderr = run_tiny(tmp_path, "")
    lines = stderr.splitlines()
    assert lines[0].startswith("program ") and len(lines) == 1, stderr
