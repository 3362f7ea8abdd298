"""The shipped problem folders: initial programs score, evaluators reject what breaks the rules."""

from __future__ import annotations

import functools
import importlib.util
import math
import sys
import tempfile
import textwrap
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from evaluators.evaluate import evaluate_job
from service.config import build_run_config
from service.execution.base import make_job
from service.problems.export import export_openevolve
from service.problems.load import load_problem

PROBLEMS = Path(__file__).resolve().parents[2] / "problems"
NAMES = ["quickstart", "circle_packing", "bin_packing", "control_policy", "evolved_es", "pg_loss"]
SLOW = {"evolved_es", "pg_loss"}  # they train learners: seconds, more under load
_EXPORTS = tempfile.TemporaryDirectory(prefix="evoforge-exported-")  # removed at exit


@functools.cache
def exported(name: str) -> Path:
    """Returns the problem exported for OpenEvolve (a two-phase problem gets its evaluator.py)."""
    return export_openevolve(PROBLEMS / name, Path(_EXPORTS.name) / name)


def evaluator(name: str) -> ModuleType:
    """Returns the problem's (or its exported OpenEvolve) evaluator module; ours, safe here."""
    path = PROBLEMS / name / "evaluator.py"
    if not path.exists():
        path = exported(name) / "evaluator.py"
    spec = importlib.util.spec_from_file_location(f"evaluator_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses in an evaluator look their module up
    spec.loader.exec_module(module)
    return module


def scorer(name: str) -> ModuleType:
    """Returns a two-phase problem's trusted scorer module."""
    spec = importlib.util.spec_from_file_location(f"scorer_{name}", PROBLEMS / name / "scorer.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def program(tmp_path: Path, code: str) -> str:
    """Returns the path of a program file holding code."""
    path = tmp_path / "program.py"
    path.write_text(textwrap.dedent(code))
    return str(path)


@pytest.mark.parametrize("name", NAMES)
def test_initial_program_scores_finite_and_valid_with_feedback(name: str) -> None:
    result = evaluator(name).evaluate(str(PROBLEMS / name / "initial_program.py"))
    assert all(math.isfinite(v) for v in result.metrics.values())
    assert 0 < result.metrics["combined_score"] < 1e6
    assert result.metrics["validity"] == 1.0
    assert isinstance(result.artifacts["feedback"], str) and result.artifacts["feedback"]


@pytest.mark.parametrize("name", NAMES)
def test_initial_program_scores_in_the_real_sandbox_under_the_problems_limits(name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    run = build_run_config(problem.run_defaults, source=name)
    result = evaluate_job(make_job(problem, problem.initial_code, run.evaluation))
    assert result.ok, result.error
    in_process = evaluator(name).evaluate(str(PROBLEMS / name / "initial_program.py"))
    assert result.score == pytest.approx(in_process.metrics["combined_score"])
    limit = run.evaluation.timeout_s / 2 if name in SLOW else min(5.0, run.evaluation.timeout_s / 2)
    assert result.duration_s < limit


# ---------------------------------------------------------------- quickstart

def test_quickstart_hand_tuned_numbers_beat_the_initial_program(tmp_path: Path) -> None:
    quickstart = evaluator("quickstart")
    initial = quickstart.evaluate(str(PROBLEMS / "quickstart" / "initial_program.py")).metrics
    closer = quickstart.evaluate(program(tmp_path, """
        def curve(x):
            return 0.9 * x * x + 0.8 * x + 1.2
    """)).metrics
    assert closer["combined_score"] > initial["combined_score"] + 0.2
    assert closer["rmse"] < initial["rmse"]


def test_quickstart_exact_target_scores_one(tmp_path: Path) -> None:
    result = evaluator("quickstart").evaluate(program(tmp_path, """
        def curve(x):
            return x * x + x + 1.0
    """))
    assert result.metrics["combined_score"] == 1.0


@pytest.mark.parametrize(("body", "reason"), [
    ("def curve(x):\n    return lambda: x\n", "returned function"),
    ("def curve(x):\n    return float('nan')\n", "finite"),
    ("def curve(x):\n    return True\n", "returned bool"),
    ("def curve(x):\n    return 1e308 * 10 if x > 0 else 0.0\n", "finite"),
    ("def fit(x):\n    return x\n", "no curve(x)"),
])
def test_quickstart_unusable_curve_scores_zero_with_reason(tmp_path: Path, body: str,
                                                           reason: str) -> None:
    result = evaluator("quickstart").evaluate(program(tmp_path, body))
    assert result.metrics["combined_score"] == 0.0 and result.metrics["validity"] == 0.0
    assert reason in result.artifacts["feedback"]


# ---------------------------------------------------------------- circle packing

def grid_packing() -> tuple[np.ndarray, np.ndarray]:
    """Returns a valid packing: a 5x5 grid of circles just under 0.1, one small one in a gap."""
    ticks = [0.1, 0.3, 0.5, 0.7, 0.9]
    centers = [[x, y] for x in ticks for y in ticks] + [[0.2, 0.2]]
    radii = [0.1 * (1 - 1e-9)] * 25 + [0.04]
    return np.array(centers), np.array(radii)


def sparse_packing() -> tuple[np.ndarray, np.ndarray]:
    """Returns a valid packing of 26 tiny circles in the bottom band; the top is free for tests."""
    centers = [[0.05 + 0.07 * k, y] for y in (0.05, 0.15) for k in range(13)]
    return np.array(centers), np.full(26, 0.01)


def test_circle_packing_accepts_valid_packings() -> None:
    circle = scorer("circle_packing")
    assert circle.violation(*(a.tolist() for a in grid_packing())) is None
    assert circle.violation(*(a.tolist() for a in sparse_packing())) is None


def test_circle_packing_accepts_circles_that_touch_exactly() -> None:
    centers, radii = sparse_packing()
    centers[0], centers[1], radii[0], radii[1] = [0.25, 0.75], [0.75, 0.75], 0.25, 0.25
    assert scorer("circle_packing").violation(centers.tolist(), radii.tolist()) is None


@pytest.mark.parametrize(("excess", "valid"), [(1e-12, False), (-1e-12, True)])
def test_circle_packing_overlap_of_one_trillionth_is_rejected(excess: float, valid: bool) -> None:
    centers, radii = sparse_packing()
    centers[0], centers[1] = [0.3, 0.6], [0.6, 0.7]
    radii[0] = 0.1
    radii[1] = math.dist(centers[0], centers[1]) - radii[0] + excess
    reason = scorer("circle_packing").violation(centers.tolist(), radii.tolist())
    assert (reason is None) == valid
    assert valid or "circles 0 and 1 overlap" in reason


@pytest.mark.parametrize(("excess", "valid"), [(1e-12, False), (0.0, True)])
def test_circle_packing_circle_sticking_out_by_one_trillionth_is_rejected(excess: float,
                                                                          valid: bool) -> None:
    centers, radii = sparse_packing()
    radii[0] = 0.1
    centers[0] = [radii[0] - excess, 0.6]
    reason = scorer("circle_packing").violation(centers.tolist(), radii.tolist())
    assert (reason is None) == valid
    assert valid or ("circle 0" in reason and "sticks out" in reason)


def test_circle_packing_rejects_a_grid_of_touching_decimal_circles() -> None:
    centers, _ = grid_packing()
    radii = [0.1] * 25 + [0.04]  # e.g. 0.3 - 0.1 < 0.2 in binary floating point
    assert scorer("circle_packing").violation(centers.tolist(), radii) is not None


CIRCLE_PROGRAM = """
import numpy as np

def run_packing():
    ticks = [0.1, 0.3, 0.5, 0.7, 0.9]
    centers = np.array([[x, y] for x in ticks for y in ticks] + [[0.2, 0.2]])
    radii = np.array([0.1 * (1 - 1e-9)] * 25 + [0.04])
    {edit}
    return centers, radii
"""


@pytest.mark.parametrize(("edit", "reason"), [
    ("pass", None),
    ("centers[3, 1] = float('nan')", "NaN"),
    ("radii[7] = -0.01", "radius"),
    ("radii[7] = 0.0", "radius"),
    ("radii = radii[:25]", "shape (26,)"),
    ("centers = np.hstack([centers, centers[:, :1]])", "shape (26, 2)"),
    ("radii = radii.astype(complex)", "real numbers"),
    ("radii = [str(r) for r in radii]", "real numbers"),
    ("return centers", "(centers, radii)"),
])
def test_circle_packing_program_output_is_checked_strictly(tmp_path: Path, edit: str,
                                                          reason: str | None) -> None:
    path = program(tmp_path, CIRCLE_PROGRAM.format(edit=edit))
    result = evaluator("circle_packing").evaluate(path)
    if reason is None:
        assert result.metrics["validity"] == 1.0
        assert result.metrics["combined_score"] == pytest.approx(25 * 0.1 + 0.04)
    else:
        assert result.metrics["combined_score"] == 0.0 and result.metrics["validity"] == 0.0
        assert reason in result.artifacts["feedback"]


# ---------------------------------------------------------------- bin packing

def priority_program(tmp_path: Path, body: str) -> str:
    """Returns the path of a program whose priority(item, bins) has the given body."""
    return program(tmp_path, "import numpy as np\n\n\ndef priority(item, bins):\n"
                   + textwrap.indent(textwrap.dedent(body), "    "))


@pytest.mark.parametrize(("body", "reason"), [
    ("return np.full(len(bins), np.nan)", "NaN"),
    ("return np.zeros(len(bins) + 1)", "shape"),
    ("return 1.0", "shape ()"),
    ("raise ValueError('boom')", "raised ValueError: boom"),
    ("return ['a'] * len(bins)", "not numbers"),
    ("return bins * 1j", "complex"),
])
def test_bin_packing_broken_priority_is_rejected_with_reason(tmp_path: Path, body: str,
                                                           reason: str) -> None:
    result = evaluator("bin_packing").evaluate(priority_program(tmp_path, body))
    assert result.metrics["combined_score"] == 0.0 and result.metrics["validity"] == 0.0
    assert reason in result.artifacts["feedback"]


def test_bin_packing_best_fit_beats_first_fit_and_stays_above_the_bound(tmp_path: Path) -> None:
    bins = evaluator("bin_packing")
    best = bins.evaluate(str(PROBLEMS / "bin_packing" / "initial_program.py")).metrics
    first_fit = priority_program(tmp_path, "return -np.arange(len(bins), dtype=float)")
    first = bins.evaluate(first_fit).metrics
    assert 0.9 < first["combined_score"] < best["combined_score"] < 1.0
    assert best["avg_excess_bins_pct"] < first["avg_excess_bins_pct"]


def test_bin_packing_priority_cannot_corrupt_the_bins_it_is_shown() -> None:
    bins = evaluator("bin_packing")
    items = bins.instances()[0][:300]

    def first_fit(item: float, capacities: np.ndarray) -> np.ndarray:
        return -np.arange(len(capacities), dtype=float)

    def vandal(item: float, capacities: np.ndarray) -> np.ndarray:
        capacities[:] = 1000.0
        return first_fit(item, capacities)

    assert bins.pack(items, vandal) == bins.pack(items, first_fit)
    assert bins.pack(items, first_fit) >= math.ceil(items.sum() / bins.CAPACITY)
