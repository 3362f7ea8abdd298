"""Trusted scorer: a lower bound on the second autocorrelation constant C2 from a step function.

For nonnegative f, ||f*f||_2^2 <= C2 ||f*f||_1 ||f*f||_inf. A step function with n equal steps of
heights a_0..a_{n-1} has a piecewise-linear autoconvolution g with knot values c = a*a (zero at both
ends), so the norms are exact sums: ||g||_2^2 = h/3 sum (y_i^2 + y_i y_{i+1} + y_{i+1}^2),
||g||_1 = h sum c, ||g||_inf = max c, and the step width cancels out of the ratio
C2 >= ||g||_2^2 / (||g||_1 ||g||_inf). Larger is better. score(data) never imports the program.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BEST_KNOWN = 0.96264  # see problem.toml for the source
MAX_STEPS = 20_000
LIMIT = 1e9  # heights are scale-free; larger magnitudes only invite overflow


def score(data: Any) -> dict[str, Any]:
    """Returns the bound a list of nonnegative step heights certifies; ValueError if invalid."""
    heights = steps(data, "heights")
    a = np.asarray(heights, dtype=np.float64)
    c = np.convolve(a, a)
    if not float(c.max()) > 0:
        raise ValueError("the heights are all 0 (or so tiny that f*f underflows); f needs a "
                         "positive integral")
    y = np.concatenate([[0.0], c, [0.0]])
    l2_squared = math.fsum((y[:-1] ** 2 + y[:-1] * y[1:] + y[1:] ** 2).tolist()) / 3
    c2 = l2_squared / (math.fsum(c.tolist()) * float(c.max()))
    return {"c2": c2, "combined_score": c2 / BEST_KNOWN, "validity": 1.0, "steps": float(len(a)),
            "feedback": f"valid step function with {len(a)} steps: C2 >= {c2:.6f} (best known "
                        f"{BEST_KNOWN}; larger is better)"}


def steps(data: Any, name: str) -> list[float]:
    """Returns data as nonnegative finite floats (1..MAX_STEPS of them); else ValueError."""
    if isinstance(data, dict):
        data = data.get(name)
    if not isinstance(data, list) or not 1 <= len(data) <= MAX_STEPS:
        got = f"length {len(data)}" if isinstance(data, list) else type(data).__name__
        raise ValueError(f"{name} must be a list of 1 to {MAX_STEPS} numbers; got {got}")
    out = []
    for i, value in enumerate(data):
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name}[{i}] must be a real number; got "  # noqa: TRY004
                             f"{type(value).__name__} {str(value)[:40]}")
        number = float(value) if abs(value) <= LIMIT else math.inf
        if not math.isfinite(number):
            raise ValueError(f"{name}[{i}] is {value!r}: NaN, infinity and magnitudes above "
                             f"{LIMIT:g} are not allowed")
        if number < 0:
            raise ValueError(f"{name}[{i}] = {number!r} is negative; f must be >= 0 everywhere")
        out.append(number)
    return out
