"""Trusted scorer: 11 points in a triangle whose smallest triangle (of any 3 points) is largest.

The domain is the equilateral triangle T with corners (0, 0), (1, 0), (1/2, sqrt(3)/2); points on
its boundary count as inside. Containment is decided exactly: y >= 0, y <= sqrt(3) x and
y <= sqrt(3) (1 - x) become y >= 0, x >= 0, x <= 1, y^2 <= 3 x^2 and y^2 <= 3 (1 - x)^2 in rational
arithmetic on the float64 values (no tolerance). Triangle areas are exact too. The score is the
smallest area divided by the area of T (sqrt(3)/4), the scale-free form of AlphaEvolve's
"unit-area triangle" statement. score(data) never imports the program.
"""

from __future__ import annotations

import math
from fractions import Fraction
from itertools import combinations
from typing import Any

N_POINTS = 11
BEST_KNOWN = 0.036529889880030135  # smallest area / area of T; see problem.toml for the source


def score(data: Any) -> dict[str, Any]:
    """Returns the normalised smallest triangle area; raises ValueError naming the defect."""
    points = real_matrix(data, (N_POINTS, 2), "points")
    exact = [(Fraction(x), Fraction(y)) for x, y in points]
    for i, (x, y) in enumerate(exact):
        if not (y >= 0 and 0 <= x <= 1 and y * y <= 3 * x * x and y * y <= 3 * (1 - x) ** 2):
            raise ValueError(f"point {i} ({points[i][0]!r}, {points[i][1]!r}) lies outside the "
                             "triangle (0, 0), (1, 0), (1/2, sqrt(3)/2) (checked exactly)")
    smallest, where = None, (0, 0, 0)
    for i, j, k in combinations(range(N_POINTS), 3):
        (ax, ay), (bx, by), (cx, cy) = exact[i], exact[j], exact[k]
        area = abs((bx - ax) * (cy - ay) - (cx - ax) * (by - ay)) / 2
        if smallest is None or area < smallest:
            smallest, where = area, (i, j, k)
    value = float(smallest) / (math.sqrt(3) / 4)
    return {"min_area": value, "combined_score": value / BEST_KNOWN, "validity": 1.0,
            "feedback": f"valid points: the smallest triangle is points {where}, area "
                        f"{value:.6f} of the domain's (best known {BEST_KNOWN}; larger is better)"}


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
    number = float(value) if abs(value) <= 1e6 else math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} holds {value!r}: NaN, infinity and magnitudes above 1e6 are "
                         "not allowed")
    return number
