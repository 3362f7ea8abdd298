"""Paired comparisons over seeds: mean difference, its bootstrap interval, and the sign test."""

from __future__ import annotations

import math
import random
import statistics
from typing import Any


def paired_stats(diffs: list[float], resamples: int = 10000) -> dict[str, Any]:
    """Returns mean paired difference, a 95% paired-bootstrap CI and a two-sided sign test."""
    if not diffs:
        return {"mean": None, "ci": None, "wins": 0, "ties": 0, "losses": 0, "sign_p": None}
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(resamples))
    wins = sum(d > 1e-12 for d in diffs)
    losses = sum(d < -1e-12 for d in diffs)
    return {"mean": statistics.mean(diffs),
            "ci": (means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]),
            "wins": wins, "ties": n - wins - losses, "losses": losses,
            "sign_p": sign_test(wins, losses)}


def sign_test(wins: int, losses: int) -> float:
    """Returns the two-sided exact sign-test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)
