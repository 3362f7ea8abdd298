"""Best-so-far curves from (position, score) points, in the problem's direction; pure functions.

A curve holds, for each position (iteration, LLM sample, second), the best score reached so far;
None until something scored. `maximize` is always passed in, read from the problem: three of the
problems minimise, and a curve that assumed maximisation drew their worst score as their best.
"""

from __future__ import annotations

from collections.abc import Iterable
from statistics import fmean


def better(a: float, b: float | None, maximize: bool) -> bool:
    """Returns True when score a beats b (None: nothing yet) in the problem's direction."""
    return b is None or (a > b if maximize else a < b)


def running_best(scores: Iterable[float | None], maximize: bool,
                 start: float | None = None) -> list[float | None]:
    """Returns the best so far after each score (None: no score there), starting from start."""
    best, curve = start, []
    for score in scores:
        if score is not None and better(score, best, maximize):
            best = score
        curve.append(best)
    return curve


def best_curve(points: Iterable[tuple[int, float | None]], length: int,
               maximize: bool) -> list[float | None]:
    """Returns best-so-far after each iteration 0..length from (iteration, score) points."""
    by_iter: dict[int, float] = {}
    for it, score in points:
        if score is not None and better(score, by_iter.get(it), maximize):
            by_iter[it] = score
    return running_best((by_iter.get(it) for it in range(length + 1)), maximize)


def time_curve(points: Iterable[tuple[float, float | None]], maximize: bool) -> list[list[float]]:
    """Returns [t, best-so-far] steps from (seconds since start, score) points."""
    best: float | None = None
    steps: list[list[float]] = []
    for t, score in sorted((p for p in points if p[1] is not None), key=lambda p: p[0]):
        if better(score, best, maximize):
            best = score
            steps.append([t, best])
    return steps


def last_value(curve: list[float | None]) -> float | None:
    """Returns the last value of a curve that is not None."""
    return next((v for v in reversed(curve) if v is not None), None)


def padded(curves: list[list[float | None]]) -> list[list[float | None]]:
    """Returns the non-empty curves padded with their last value to the longest one's length."""
    n = max((len(c) for c in curves), default=0)
    return [c + [c[-1]] * (n - len(c)) for c in curves if c]


def mean_curve(curves: list[list[float | None]]) -> list[float | None]:
    """Returns the pointwise mean of padded curves (None until every curve has a value)."""
    rows = padded(curves)
    if not rows:
        return []
    return [None if any(c[i] is None for c in rows) else fmean(c[i] for c in rows)
            for i in range(len(rows[0]))]
