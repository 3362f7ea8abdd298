"""AlphaEvolve suite's trusted scorers: known constructions, exploit probes, initial programs."""

from __future__ import annotations

import importlib.util
import json
import math
from fractions import Fraction
from itertools import combinations
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from evaluators.evaluate import evaluate_job
from service.config import build_run_config
from service.execution.base import make_job
from service.execution.check import check_problem
from service.problems.export import export_openevolve
from service.problems.load import load_problem

PROBLEMS = Path(__file__).resolve().parents[2] / "problems"
SUITE = ["circle_packing", "circle_packing_32", "autocorrelation_first", "autocorrelation_second",
         "autocorrelation_third", "min_max_distance_16", "heilbronn_triangle_11"]


def module(name: str, file: str | Path) -> ModuleType:
    """Returns problems/NAME/FILE (or the path FILE) imported under a unique module name."""
    spec = importlib.util.spec_from_file_location(f"suite_{name}_{Path(file).stem}",
                                                  PROBLEMS / name / file)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scored(name: str, data: object) -> dict:
    """Returns the scorer's metrics for data after the JSON round trip the two-phase form makes."""
    return module(name, "scorer.py").score(json.loads(json.dumps(data)))


def not_better_than_best(name: str, value: float) -> bool:
    problem = load_problem(PROBLEMS / name)
    return not problem.direction.better(value, problem.best_known)


# ---------------------------------------------------------------- every suite problem

@pytest.mark.parametrize("name", SUITE)
def test_problem_declares_two_phase_form_and_sourced_best_known(name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    assert problem.two_phase and problem.scorer_path == PROBLEMS / name / "scorer.py"
    assert problem.best_known is not None and problem.best_known_source
    assert not (PROBLEMS / name / "evaluator.py").exists()  # the OpenEvolve entry is exported


@pytest.mark.parametrize("name", SUITE)
def test_initial_program_scores_finite_in_the_real_sandbox_and_matches_the_scorer(
        name: str) -> None:
    problem = load_problem(PROBLEMS / name)
    cfg = build_run_config(problem.run_defaults, source=name)
    job = make_job(problem, problem.initial_code, cfg.evaluation)
    first = evaluate_job(job)  # pre-forked problems start their servers here
    result = evaluate_job(job)
    assert first.ok and result.ok, (first.error, result.error)
    assert math.isfinite(result.score) and result.score == first.score and result.duration_s < 5
    assert not_better_than_best(name, result.score)
    entry = getattr(module(name, "initial_program.py"), problem.entry)
    data = json.loads(json.dumps(entry(), default=lambda a: a.tolist()))
    assert scored(name, data)[problem.score_metric] == result.score


@pytest.mark.parametrize("name", SUITE)
def test_exported_openevolve_entry_calls_the_same_scorer(name: str, tmp_path: Path) -> None:
    problem = load_problem(PROBLEMS / name)
    folder = export_openevolve(problem.path, tmp_path / name)
    entry = module(name, folder / "evaluator.py")
    result = entry.evaluate(str(problem.path / "initial_program.py"))
    assert result.metrics["validity"] == 1.0 and result.artifacts["feedback"]
    data = getattr(module(name, "initial_program.py"), problem.entry)()
    expected = scored(name, json.loads(json.dumps(data, default=lambda a: a.tolist())))
    assert result.metrics == {k: v for k, v in expected.items() if k != "feedback"}
    broken = entry.evaluate(str(PROBLEMS / "quickstart" / "initial_program.py"))
    assert broken.metrics["combined_score"] == 0.0
    assert f"no {problem.entry}() function" in broken.artifacts["feedback"]


@pytest.mark.parametrize("name", SUITE)
def test_problems_check_passes(name: str) -> None:
    report = check_problem(PROBLEMS / name)
    assert report.ok, report.render()


PROBES_2D = {  # data -> part of the reason; for the problems whose data is a list of points
    "nan": (lambda pts: [[math.nan, pts[0][1]], *pts[1:]], "NaN"),
    "inf": (lambda pts: [[math.inf, pts[0][1]], *pts[1:]], "infinity"),
    "short": (lambda pts: pts[:-1], "shape"),
    "row too long": (lambda pts: [[*pts[0], 0.0], *pts[1:]], "shape"),
    "string": (lambda pts: [["0.5", pts[0][1]], *pts[1:]], "real numbers"),
    "bool": (lambda pts: [[True, pts[0][1]], *pts[1:]], "real numbers"),
    "absurd": (lambda pts: [[1e300, pts[0][1]], *pts[1:]], "magnitudes above"),
    "not a list": (lambda pts: "points", "shape"),
}


@pytest.mark.parametrize("probe", sorted(PROBES_2D))
@pytest.mark.parametrize("name", ["min_max_distance_16", "heilbronn_triangle_11"])
def test_point_problems_reject_malformed_points(name: str, probe: str) -> None:
    entry = module(name, "initial_program.py").construct
    make, reason = PROBES_2D[probe]
    with pytest.raises(ValueError, match=reason):
        scored(name, make(entry().tolist()))


HEIGHT_PROBES = {
    "nan": ([1.0, math.nan, 1.0], "NaN"), "inf": ([1.0, math.inf], "infinity"),
    "absurd": ([1.0, 1e300], "magnitudes above"), "huge int": ([1, 10**400], "magnitudes"),
    "empty": ([], "1 to 20000"), "too many": ([1.0] * 20_001, "1 to 20000"),
    "nested": ([[1.0, 2.0]], "real number"), "bool": ([True, 1.0], "real number"),
    "zero": ([0.0, 0.0], "sum"), "dict": ({"h": [1.0]}, "list"),
}


@pytest.mark.parametrize("probe", sorted(HEIGHT_PROBES))
@pytest.mark.parametrize("name", ["autocorrelation_first", "autocorrelation_second",
                                  "autocorrelation_third"])
def test_step_function_problems_reject_malformed_heights(name: str, probe: str) -> None:
    data, reason = HEIGHT_PROBES[probe]
    if probe == "zero" and name == "autocorrelation_second":
        reason = "all 0"
    with pytest.raises(ValueError, match=reason):
        scored(name, data)


@pytest.mark.parametrize("name", ["autocorrelation_first", "autocorrelation_second"])
def test_nonnegative_problems_reject_one_negative_height(name: str) -> None:
    with pytest.raises(ValueError, match=r"heights\[1\] = -1e-300 is negative"):
        scored(name, [1.0, -1e-300, 1.0])
    assert scored("autocorrelation_third", [1.0, -0.5, 1.0])["c3"] > 0  # signs are free there


# ---------------------------------------------------------------- circle packing

def grid(n: int, per_row: int) -> tuple[list[list[float]], list[float]]:
    """Returns n circles on a per_row x per_row grid, radii just under half the spacing."""
    step = 1 / per_row
    centers = [[step / 2 + step * (k % per_row), step / 2 + step * (k // per_row)]
               for k in range(n)]
    return centers, [step / 2 * (1 - 1e-9)] * n


@pytest.mark.parametrize(("name", "n", "per_row"), [("circle_packing", 26, 6),
                                                     ("circle_packing_32", 32, 6)])
def test_circle_grid_packings_are_valid_and_below_best_known(name: str, n: int,
                                                             per_row: int) -> None:
    centers, radii = grid(n, per_row)
    metrics = scored(name, [centers, radii])
    assert metrics["sum_radii"] == pytest.approx(n / (2 * per_row), rel=1e-8)
    assert not_better_than_best(name, metrics["combined_score"])


def circle_probe(kind: str) -> tuple[list[list[float]], list[float]]:
    centers, radii = grid(26, 6)
    if kind == "nan centre":
        centers[3][0] = math.nan
    elif kind == "negative radius":
        radii[5] = -0.01
    elif kind == "inf radius":
        radii[5] = math.inf
    elif kind == "overlap 1e-12":  # within any float tolerance a checker might allow
        radii[7], radii[8] = 1 / 12 + 1e-12, 1 / 12
    elif kind == "outside 1e-12":
        centers[0][0] = radii[0] - 1e-12
    elif kind == "wrong length":
        radii = radii[:25]
    return centers, radii


CIRCLE_PROBES = {"nan centre": "NaN", "negative radius": "radius -0.01", "inf radius": "infinity",
                 "overlap 1e-12": "circles 7 and 8 overlap", "outside 1e-12": "sticks out",
                 "wrong length": "shape (26,)"}


@pytest.mark.parametrize("kind", sorted(CIRCLE_PROBES))
def test_circle_exploit_probes_are_rejected_in_the_real_sandbox(kind: str) -> None:
    problem = load_problem(PROBLEMS / "circle_packing")
    centers, radii = circle_probe(kind)
    code = (f"import math\nnan, inf = math.nan, math.inf\n\ndef run_packing():\n"
            f"    return {centers!r}, {radii!r}\n")
    result = evaluate_job(make_job(problem, code, build_run_config().evaluation))
    assert result.error_kind == "rejected" and result.score is None
    assert CIRCLE_PROBES[kind] in result.error, result.error


# ---------------------------------------------------------------- autocorrelation

def dense_norms(heights: list[float], m: int = 40) -> tuple[float, float, float, float]:
    """Returns (max g, max |g|, ||g||_2^2, ||g||_1) of g = f*f for f on [-1/4, 1/4], sampled."""
    a = np.repeat(np.asarray(heights, dtype=float), m)
    dx = 0.5 / len(a)
    g = np.convolve(a, a) * dx
    return float(g.max()), float(np.abs(g).max()), float((g**2).sum() * dx), float(
        np.abs(g).sum() * dx)


@pytest.mark.parametrize("seed", [0, 1])
def test_autocorrelation_bounds_match_an_independent_dense_computation(seed: int) -> None:
    heights = np.random.default_rng(seed).uniform(0.2, 1.0, 30).tolist()
    top, top_abs, l2, l1 = dense_norms(heights)
    integral = 0.5 * sum(heights) / len(heights)
    assert scored("autocorrelation_first", heights)["c1"] == pytest.approx(
        top / integral**2, rel=2e-3)
    assert scored("autocorrelation_second", heights)["c2"] == pytest.approx(
        l2 / (l1 * top), rel=2e-3)
    signed = [h - 0.3 for h in heights]
    _, top_abs, _, _ = dense_norms(signed)
    integral = 0.5 * sum(signed) / len(signed)
    assert scored("autocorrelation_third", signed)["c3"] == pytest.approx(
        top_abs / integral**2, rel=2e-3)


def test_constant_function_gives_the_textbook_bounds() -> None:
    assert scored("autocorrelation_first", [1.0] * 40)["c1"] == pytest.approx(2.0, rel=1e-12)
    assert scored("autocorrelation_third", [3] * 7)["c3"] == pytest.approx(2.0, rel=1e-12)
    assert scored("autocorrelation_second", [2.5] * 40)["c2"] == pytest.approx(2 / 3, rel=1e-12)
    for name in ("autocorrelation_first", "autocorrelation_second", "autocorrelation_third"):
        metric = load_problem(PROBLEMS / name).score_metric
        assert not_better_than_best(name, scored(name, [1.0] * 40)[metric])


# ---------------------------------------------------------------- point problems

def test_distance_ratio_is_exact_and_invariant_under_scaling() -> None:
    ticks = [0.0, 1.0, 2.0, 3.0]
    square = [[x, y] for x in ticks for y in ticks]
    assert scored("min_max_distance_16", square)["ratio_squared"] == 18.0
    moved = [[2 * x + 0.5, 2 * y - 0.25] for x, y in square]
    assert scored("min_max_distance_16", moved)["ratio_squared"] == 18.0
    rng = np.random.default_rng(3).uniform(-1, 1, (16, 2))
    d = [np.sum((a - b) ** 2) for a, b in combinations(rng, 2)]
    ratio = scored("min_max_distance_16", rng.tolist())["ratio_squared"]
    assert ratio == pytest.approx(max(d) / min(d), rel=1e-12)
    assert not_better_than_best("min_max_distance_16", ratio)


def test_distance_ratio_rejects_coincident_points() -> None:
    ticks = [0.0, 1.0, 2.0, 3.0]
    points = [[x, y] for x in ticks for y in ticks]
    points[5] = list(points[9])
    with pytest.raises(ValueError, match="points 5 and 9 coincide"):
        scored("min_max_distance_16", points)


def in_triangle(x: float, y: float) -> bool:
    fx, fy = Fraction(x), Fraction(y)
    return fy >= 0 and 0 <= fx <= 1 and fy * fy <= 3 * fx * fx and fy * fy <= 3 * (1 - fx) ** 2


def test_heilbronn_smallest_area_matches_brute_force_and_corners_are_inside() -> None:
    rng = np.random.default_rng(5)
    weights = rng.dirichlet([1.0, 1.0, 1.0], size=9)
    corners = np.array([[0.0, 0.0], [1.0, 0.0], [0.5, math.sqrt(3) / 2]])
    points = [[0.0, 0.0], [1.0, 0.0], *(weights @ corners).tolist()]
    points = [p for p in points if in_triangle(*p)][:11]
    assert len(points) == 11
    areas = [abs((b[0] - a[0]) * (c[1] - a[1]) - (c[0] - a[0]) * (b[1] - a[1])) / 2
             for a, b, c in combinations(np.array(points), 3)]
    value = scored("heilbronn_triangle_11", points)["min_area"]
    assert value == pytest.approx(min(areas) / (math.sqrt(3) / 4), rel=1e-9)
    assert not_better_than_best("heilbronn_triangle_11", value)


def test_heilbronn_rejects_a_point_one_ulp_outside_the_triangle() -> None:
    points = module("heilbronn_triangle_11", "initial_program.py").construct().tolist()
    x = 0.25
    y = math.sqrt(3) * x  # on the left edge up to rounding; step until exactly outside
    while in_triangle(x, y):
        y = math.nextafter(y, 1.0)
    points[0] = [x, y]
    with pytest.raises(ValueError, match=r"point 0 .* lies outside"):
        scored("heilbronn_triangle_11", points)
    points[0] = [0.5, -5e-324]
    with pytest.raises(ValueError, match="outside"):
        scored("heilbronn_triangle_11", points)


PATCHING_PROGRAM = """
import json, sys
from pathlib import Path

job = json.loads((Path.cwd().parent / "job.json").read_text())
sys.path.insert(0, job["problem_dir"])
import scorer
scorer.violation = lambda centers, radii: None
scorer.score = lambda data: {"combined_score": 99.0}
sys.modules["circle_packing_scorer"] = scorer

def run_packing():
    return [[0.5, 0.5]] * 26, [0.5] * 26
"""


def test_circle_program_that_monkeypatches_the_scorer_is_still_rejected() -> None:
    problem = load_problem(PROBLEMS / "circle_packing")
    result = evaluate_job(make_job(problem, PATCHING_PROGRAM, build_run_config().evaluation))
    assert result.error_kind == "rejected" and result.score is None
    assert "circles 0 and 1 overlap" in result.error
    assert module("circle_packing", "scorer.py").violation([[0.5, 0.5]] * 2, [0.5] * 2)
