"""Scores a packing of 26 disjoint circles in the unit square, checked exactly: sum of radii."""

from __future__ import annotations

import importlib.util
import math
from typing import Any

import numpy as np

N_CIRCLES = 26
BEST_KNOWN = 2.6359830849  # AlphaEvolve repository of problems (Google DeepMind, 2025)
_SHIFT = 1074  # every finite float64 is an integer multiple of 2**-1074


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def evaluate(program_path: str) -> Result:
    """Returns the metrics of the packing that the program's run_packing() builds."""
    program = _load(program_path)
    if not callable(getattr(program, "run_packing", None)):
        return _invalid("the program has no run_packing() function; keep the code outside the "
                        "EVOLVE-BLOCK unchanged")
    output = program.run_packing()
    if not isinstance(output, (tuple, list)) or len(output) < 2:
        return _invalid(f"run_packing() must return (centers, radii); got {type(output).__name__}")
    centers, radii = _as_floats(output[0], (N_CIRCLES, 2), "centers"), _as_floats(
        output[1], (N_CIRCLES,), "radii")
    for parsed in (centers, radii):
        if isinstance(parsed, str):
            return _invalid(parsed)
    problem = violation(centers, radii)
    if problem:
        return _invalid(problem)
    total = math.fsum(radii)
    return Result({"combined_score": total, "validity": 1.0, "sum_radii": total,
                   "target_ratio": total / BEST_KNOWN},
                  f"valid packing: sum of radii {total:.6f} ({total / BEST_KNOWN:.2%} of the best "
                  f"known {BEST_KNOWN}); smallest radius {min(radii):.4g}")


def violation(centers: list[list[float]], radii: list[float]) -> str | None:
    """Returns which constraint the packing breaks (exact arithmetic), or None when it is valid."""
    one = 1 << _SHIFT
    xs = [_exact(c[0]) for c in centers]
    ys = [_exact(c[1]) for c in centers]
    rs = [_exact(r) for r in radii]
    for i, (x, y, r) in enumerate(zip(xs, ys, rs)):
        if r <= 0:
            return f"circle {i} has radius {radii[i]!r}; every radius must be > 0"
        if x - r < 0 or x + r > one or y - r < 0 or y + r > one:
            cx, cy = centers[i]
            return (f"circle {i} (center ({cx!r}, {cy!r}), radius {radii[i]!r}) sticks out of "
                    "the unit square; need r <= x <= 1 - r and r <= y <= 1 - r exactly")
    for i in range(N_CIRCLES):
        for j in range(i + 1, N_CIRCLES):
            dx, dy, rr = xs[i] - xs[j], ys[i] - ys[j], rs[i] + rs[j]
            if dx * dx + dy * dy < rr * rr:
                gap = math.dist(centers[i], centers[j])
                return (f"circles {i} and {j} overlap: centre distance {gap!r} < radius sum "
                        f"{radii[i] + radii[j]!r}; shrink them (no tolerance is allowed)")
    return None


def _exact(value: float) -> int:
    """Returns value * 2**1074 as an exact integer (float64 values are dyadic rationals)."""
    num, den = value.as_integer_ratio()
    return num * ((1 << _SHIFT) // den)


def _as_floats(value: Any, shape: tuple[int, ...], name: str) -> list | str:
    """Returns value as nested lists of finite floats of the given shape, or the reason why not."""
    try:
        array = np.asarray(value)
    except Exception as exc:  # noqa: BLE001 - bad candidate data is a reason, not a crash
        return f"{name} is not an array ({type(exc).__name__}: {exc})"
    if array.dtype.kind not in "iuf":
        return f"{name} must hold real numbers; got dtype {array.dtype}"
    if array.shape != shape:
        return f"{name} must have shape {shape}; got {array.shape}"
    array = array.astype(np.float64)
    if not np.all(np.isfinite(array)):
        return f"{name} contains NaN or infinity"
    return array.tolist()


def _load(program_path: str) -> Any:
    """Returns the candidate program imported as a module from its file."""
    spec = importlib.util.spec_from_file_location("candidate_program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _invalid(reason: str) -> Result:
    """Returns the zero-score result of an invalid packing, with the reason as feedback."""
    return Result({"combined_score": 0.0, "validity": 0.0, "sum_radii": 0.0, "target_ratio": 0.0},
                  f"invalid packing: {reason}")
