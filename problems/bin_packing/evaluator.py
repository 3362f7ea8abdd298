"""Scores an online bin packing priority function on fixed Weibull instances vs the L1 bound."""

from __future__ import annotations

import importlib.util
import math
from collections.abc import Callable
from typing import Any

import numpy as np

CAPACITY = 100.0
N_INSTANCES = 5
N_ITEMS = 5000
SEED = 2024  # fixed: every candidate packs the same items


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


class PriorityError(ValueError):
    """The candidate's priority function returned something unusable; the message says what."""


def instances() -> list[np.ndarray]:
    """Returns the item sizes: Weibull(shape 3, scale 45) clipped into [1, 100], as in FunSearch."""
    rng = np.random.default_rng(SEED)
    return [np.clip(rng.weibull(3.0, N_ITEMS) * 45.0, 1.0, CAPACITY) for _ in range(N_INSTANCES)]


def pack(items: np.ndarray, priority: Callable[[float, np.ndarray], Any]) -> int:
    """Returns the number of bins used when each item goes to its highest-priority feasible bin."""
    remaining = np.empty(0)
    for item in items.tolist():
        fits = np.flatnonzero(remaining >= item)
        if fits.size == 0:
            remaining = np.append(remaining, CAPACITY - item)
            continue
        scores = _checked(_call(priority, item, remaining[fits].copy()), fits.size, item)
        remaining[fits[int(np.argmax(scores))]] -= item
    return int(remaining.size)


def evaluate(program_path: str) -> Result:
    """Returns mean L1 bound / bins used over the fixed instances (1.0 is optimal) and feedback."""
    priority = getattr(_load(program_path), "priority", None)
    if not callable(priority):
        return _failed("the program defines no priority(item, bins) function")
    ratios, excess = [], []
    for items in instances():
        bound = math.ceil(math.fsum(items.tolist()) / CAPACITY)
        try:
            used = pack(items, priority)
        except PriorityError as exc:
            return _failed(str(exc))
        ratios.append(bound / used)
        excess.append(100.0 * (used - bound) / bound)
    score, pct = float(np.mean(ratios)), float(np.mean(excess))
    return Result({"combined_score": score, "avg_excess_bins_pct": pct, "validity": 1.0},
                  f"{pct:.2f}% more bins than the lower bound ceil(sum/capacity) on average "
                  f"over {N_INSTANCES} instances of {N_ITEMS} items (0% would be optimal)")


def _call(priority: Callable[[float, np.ndarray], Any], item: float, bins: np.ndarray) -> Any:
    """Returns priority(item, bins); an exception it raises becomes a PriorityError naming it."""
    try:
        return priority(item, bins)
    except MemoryError:
        raise
    except Exception as exc:  # the candidate's own error is the reason it failed
        raise PriorityError(f"priority(item={item:.3f}, bins) raised "
                            f"{type(exc).__name__}: {exc}") from exc


def _checked(scores: Any, size: int, item: float) -> np.ndarray:
    """Returns the priorities as a float array, or raises PriorityError saying what is wrong."""
    if np.iscomplexobj(scores):
        raise PriorityError(f"priority(item={item:.3f}, bins) returned complex numbers; "
                            "return real ones")
    try:
        array = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise PriorityError(f"priority() returned {type(scores).__name__}, "
                            f"not numbers ({exc})") from exc
    if array.shape != (size,):
        raise PriorityError(f"priority(item={item:.3f}, bins) returned shape {array.shape}; "
                            f"it must return one number per bin, shape ({size},)")
    if not np.all(np.isfinite(array)):
        raise PriorityError(f"priority(item={item:.3f}, bins) returned NaN or infinity; return "
                            "finite numbers")
    return array


def _load(program_path: str) -> Any:
    """Returns the candidate program imported as a module from its file."""
    spec = importlib.util.spec_from_file_location("candidate_program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable priority function, the reason as feedback."""
    return Result({"combined_score": 0.0, "avg_excess_bins_pct": 100.0, "validity": 0.0},
                  f"invalid heuristic: {reason}")
