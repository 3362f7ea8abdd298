"""Summaries of measured durations in milliseconds.

Standard library only: the peer side (benchmarks.peers.openevolve_*, run with the peer's python)
summarises its timings with the same functions as evoforge's side.
"""

from __future__ import annotations

import statistics


def mean_p50_p95_ms(seconds: list[float]) -> dict[str, float]:
    """Returns mean, p50 and p95 of durations in seconds, as milliseconds (NaN when empty)."""
    ordered = sorted(seconds) or [float("nan")]

    def pick(q: float) -> float:
        return 1e3 * ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    return {"mean": 1e3 * statistics.fmean(ordered), "p50": pick(0.5), "p95": pick(0.95)}


def median_p10_ms(seconds: list[float]) -> dict[str, float]:
    """Returns {"median_ms", "p10_ms", "n"} of durations in seconds."""
    ordered = sorted(seconds)
    return {"median_ms": statistics.median(ordered) * 1000,
            "p10_ms": ordered[len(ordered) // 10] * 1000, "n": len(ordered)}
