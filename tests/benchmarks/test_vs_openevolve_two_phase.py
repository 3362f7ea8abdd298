"""peers.vs_openevolve on two-phase problems: the folder is accepted, and the evaluator.py handed to
OpenEvolve scores a program exactly as evoforge's sandbox and trusted scorer do."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from benchmarks.harness.evoforge import strict_score
from benchmarks.harness.venvs import OPENEVOLVE
from benchmarks.peers.openevolve import write_evaluator
from benchmarks.peers.vs_openevolve import parse_args
from service.problems.load import load_problem

REPO = Path(__file__).resolve().parents[2]

_SCORE = """import importlib.util, json, sys
spec = importlib.util.spec_from_file_location("ev", sys.argv[1])
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
result = module.evaluate(sys.argv[2])
print(json.dumps(result if isinstance(result, dict) else dict(result.metrics)))
"""


def test_two_phase_problem_without_evaluator_file_is_accepted() -> None:
    args = parse_args(["--problems", "circle_packing", "--seeds", "0"])
    assert args.problems == [(REPO / "problems" / "circle_packing").resolve()]


def test_openevolve_evaluator_of_two_phase_problem_matches_strict_score(tmp_path: Path) -> None:
    python = OPENEVOLVE.ensure(log=lambda _: None)  # the harness's venv; ~11 s from pip's cache
    problem = load_problem(REPO / "problems" / "circle_packing")
    assert problem.two_phase and not (problem.path / "evaluator.py").exists()
    evaluator = write_evaluator(problem, tmp_path)
    program = tmp_path / "initial_program.py"
    program.write_text(problem.initial_code)
    broken = tmp_path / "broken.py"
    broken.write_text(problem.initial_code.replace("def run_packing", "def other_name"))
    scores = []
    for path in (program, broken):
        proc = subprocess.run([str(python), "-c", _SCORE, str(evaluator),
                               str(path)], capture_output=True, text=True, check=True,
                              cwd=tmp_path, timeout=120)
        scores.append(json.loads(proc.stdout.strip().splitlines()[-1])["combined_score"])
    assert scores[0] == pytest.approx(strict_score(problem.path, problem.initial_code)["score"])
    assert scores[0] > 1.0
    assert scores[1] == 0.0
