"""Trusted scorer: a packing of 32 disjoint circles in the unit square, checked exactly.

score(data) gets what the program's run_packing() returned, as JSON data ([centers, radii]); it
never imports the program. Containment and overlap are decided in exact rational arithmetic on the
float64 values (every float is an integer multiple of 2**-1074): no tolerance either way.
"""

from __future__ import annotations

import math
from typing import Any

N_CIRCLES = 32
BEST_KNOWN = 2.939572771206323  # see problem.toml for the source
_SHIFT = 1074


def score(data: Any) -> dict[str, Any]:
    """Returns the metrics of a valid packing; raises ValueError naming the broken rule."""
    if isinstance(data, dict):
        data = [data.get("centers"), data.get("radii")]
    if not isinstance(data, list) or len(data) != 2:
        raise ValueError(f"run_packing() must return (centers, radii); got {type(data).__name__}")
    centers = real_matrix(data[0], (N_CIRCLES, 2), "centers")
    radii = real_matrix(data[1], (N_CIRCLES,), "radii")
    reason = violation(centers, radii)
    if reason:
        raise ValueError(reason)
    total = math.fsum(radii)
    return {"combined_score": total, "validity": 1.0, "sum_radii": total,
            "target_ratio": total / BEST_KNOWN,
            "feedback": f"valid packing: sum of radii {total:.6f} ({total / BEST_KNOWN:.2%} of the "
                        f"best known {BEST_KNOWN}); smallest radius {min(radii):.4g}"}


def violation(centers: list[list[float]], radii: list[float]) -> str | None:
    """Returns which constraint the packing breaks (exact arithmetic), or None when it is valid."""
    one = 1 << _SHIFT
    xs = [_exact(c[0]) for c in centers]
    ys = [_exact(c[1]) for c in centers]
    rs = [_exact(r) for r in radii]
    for i, (x, y, r) in enumerate(zip(xs, ys, rs, strict=True)):
        if r <= 0:
            return f"circle {i} has radius {radii[i]!r}; every radius must be > 0"
        if x - r < 0 or x + r > one or y - r < 0 or y + r > one:
            cx, cy = centers[i]
            return (f"circle {i} (center ({cx!r}, {cy!r}), radius {radii[i]!r}) sticks out of "
                    "the unit square; need r <= x <= 1 - r and r <= y <= 1 - r exactly")
    for i in range(len(rs)):
        for j in range(i + 1, len(rs)):
            dx, dy, rr = xs[i] - xs[j], ys[i] - ys[j], rs[i] + rs[j]
            if dx * dx + dy * dy < rr * rr:
                gap = math.dist(centers[i], centers[j])
                return (f"circles {i} and {j} overlap: centre distance {gap!r} < radius sum "
                        f"{radii[i] + radii[j]!r}; shrink them (no tolerance is allowed)")
    return None


def real_matrix(value: Any, shape: tuple[int, ...], name: str, limit: float = 1e9) -> list[Any]:
    """Returns value as nested lists of finite floats of exactly shape; raises ValueError if not."""
    return _nested(value, shape, name, name, shape, limit)


def _nested(value: Any, shape: tuple[int, ...], name: str, where: str, full: tuple[int, ...],
            limit: float) -> list[Any]:
    if not isinstance(value, list) or len(value) != shape[0]:
        got = f"length {len(value)}" if isinstance(value, list) else type(value).__name__
        raise ValueError(f"{name} must have shape {full}; {where} has {got}")
    if len(shape) == 1:
        return [_real(v, f"{where}[{i}]", limit) for i, v in enumerate(value)]
    return [_nested(row, shape[1:], name, f"{where}[{i}]", full, limit)
            for i, row in enumerate(value)]


def _real(value: Any, name: str, limit: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError(f"{name} must hold real numbers; got {type(value).__name__} "  # noqa: TRY004
                         f"{str(value)[:40]}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise ValueError(f"{name} is {number!r}: NaN or infinity is not allowed")
    if abs(number) > limit:
        raise ValueError(f"{name} = {number!r} is absurdly large (limit {limit:g})")
    return number


def _exact(value: float) -> int:
    """Returns value * 2**1074 as an exact integer (float64 values are dyadic rationals)."""
    num, den = value.as_integer_ratio()
    return num * ((1 << _SHIFT) // den)
