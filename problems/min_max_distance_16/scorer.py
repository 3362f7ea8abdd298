"""Trusted scorer: 16 points in the plane with the smallest (max distance / min distance)^2.

score(data) gets the 16 points as JSON data ([[x, y], ...]) and never imports the program. Squared
distances are computed exactly (float64 values are dyadic rationals), so the ratio is exact up to
the final rounding to a float; coincident points (min distance 0) are rejected.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations
from typing import Any

N_POINTS = 16
BEST_KNOWN = 12.889229907717516  # ratio^2; see problem.toml for the source
LIMIT = 1e6  # the ratio is scale-free; larger coordinates only invite overflow


def score(data: Any) -> dict[str, Any]:
    """Returns the squared distance ratio of valid points; raises ValueError naming the defect."""
    points = [[Fraction(v) for v in p] for p in real_matrix(data, (N_POINTS, 2), "points")]
    squared = [(a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2 for a, b in combinations(points, 2)]
    smallest = min(squared)
    if smallest == 0:
        i, j = next((i, j) for (i, j), d in zip(combinations(range(N_POINTS), 2), squared,
                                                strict=True) if d == 0)
        raise ValueError(f"points {i} and {j} coincide; all {N_POINTS} points must be distinct")
    ratio = float(max(squared) / smallest)
    return {"ratio_squared": ratio, "ratio": math.sqrt(ratio), "combined_score": BEST_KNOWN / ratio,
            "validity": 1.0,
            "feedback": f"valid points: (max/min distance)^2 = {ratio:.9f} (best known "
                        f"{BEST_KNOWN}; smaller is better)"}


def real_matrix(value: Any, shape: tuple[int, int], name: str) -> list[list[float]]:
    """Returns value as rows of finite floats of exactly shape; raises ValueError if not."""
    if isinstance(value, dict):
        value = value.get(name)
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"length {len(value)}" if isinstance(value, list) else type(value).__name__
        raise ValueError(f"{name} must have shape {shape}; got {got}")
    rows = []
    for i, row in enumerate(value):
        if not isinstance(row, list) or len(row) != shape[1]:
            raise ValueError(f"{name} must have shape {shape}; {name}[{i}] is {str(row)[:60]}")
        rows.append([_real(v, f"{name}[{i}]") for v in row])
    return rows


def _real(value: Any, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must hold real numbers; got "  # noqa: TRY004
                         f"{type(value).__name__} {str(value)[:40]}")
    number = float(value) if abs(value) <= LIMIT else math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} holds {value!r}: NaN, infinity and magnitudes above {LIMIT:g} "
                         "are not allowed")
    return number
