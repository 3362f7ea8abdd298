"""Paired comparisons over seeds: mean difference, its bootstrap interval, and the sign test."""

from __future__ import annotations

import statistics
from typing import Any

import numpy as np
from scipy import stats

TIE = 1e-12  # differences closer to 0 than this are ties (an equivalent rewrite's rounding)


def paired_stats(diffs: list[float], resamples: int = 10000) -> dict[str, Any]:
    """Returns mean paired difference, a 95% paired-bootstrap CI and a two-sided sign test."""
    if not diffs:
        return {"mean": None, "ci": None, "wins": 0, "ties": 0, "losses": 0, "sign_p": None}
    wins = sum(d > TIE for d in diffs)
    losses = sum(d < -TIE for d in diffs)
    return {"mean": statistics.mean(diffs), "ci": bootstrap_ci(diffs, resamples),
            "wins": wins, "ties": len(diffs) - wins - losses, "losses": losses,
            "sign_p": sign_test(wins, losses)}


def bootstrap_ci(diffs: list[float], resamples: int = 10000) -> tuple[float, float]:
    """Returns the 95% percentile-bootstrap interval of the mean of diffs (seeded: repeatable)."""
    if len(set(diffs)) == 1:  # every resample has the same mean (scipy refuses one observation)
        return diffs[0], diffs[0]
    low, high = stats.bootstrap((np.asarray(diffs, dtype=float),), np.mean, n_resamples=resamples,
                                confidence_level=0.95, method="percentile",
                                rng=np.random.default_rng(0)).confidence_interval
    return float(low), float(high)


def sign_test(wins: int, losses: int) -> float:
    """Returns the two-sided exact sign-test p-value (ties dropped)."""
    if wins + losses == 0:
        return 1.0
    return float(stats.binomtest(wins, wins + losses, 0.5).pvalue)
