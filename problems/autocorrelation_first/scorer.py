"""Trusted scorer: an upper bound on the first autocorrelation constant C1 from a step function.

For every nonnegative f supported on [-1/4, 1/4], max_{|t| <= 1/2} (f*f)(t) >= C1 (int f)^2. A
step function with n equal steps of heights a_0..a_{n-1} (width h = 1/(2n)) has a piecewise-linear
autoconvolution whose maximum is at the knots, h * max_k sum_{i+j=k} a_i a_j, so it certifies
C1 <= 2n max(a*a) / (sum a)^2. Smaller is better. score(data) never imports the program.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

BEST_KNOWN = 1.5028609073611405  # see problem.toml for the source
MAX_STEPS = 20_000
LIMIT = 1e9  # heights are scale-free; larger magnitudes only invite overflow


def score(data: Any) -> dict[str, Any]:
    """Returns the bound a list of nonnegative step heights certifies; ValueError if invalid."""
    heights = steps(data, "heights", nonnegative=True)
    total = math.fsum(heights)
    if total**2 <= 0:
        raise ValueError(f"the heights sum to {total!r}; f needs a positive integral (not tiny)")
    a = np.asarray(heights, dtype=np.float64)
    c1 = 2 * len(a) * float(np.convolve(a, a).max()) / total**2
    return {"c1": c1, "combined_score": BEST_KNOWN / c1, "validity": 1.0, "steps": float(len(a)),
            "feedback": f"valid step function with {len(a)} steps: C1 <= {c1:.6f} (best known "
                        f"{BEST_KNOWN}; smaller is better)"}


def steps(data: Any, name: str, *, nonnegative: bool) -> list[float]:
    """Returns data as a list of finite floats (1..MAX_STEPS of them); raises ValueError if not."""
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
        if nonnegative and number < 0:
            raise ValueError(f"{name}[{i}] = {number!r} is negative; f must be >= 0 everywhere")
        out.append(number)
    return out
