"""Scores how closely the program's curve(x) follows a hidden target curve on [-2, 2]."""

from __future__ import annotations

import importlib.util
import math
import numbers
from typing import Any

XS = [i / 10 for i in range(-20, 21)]  # 41 points from -2 to 2


def target(x: float) -> float:
    """Returns the hidden target curve at x (the program is never shown it)."""
    return x * x + x + 1.0


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def evaluate(program_path: str) -> Result:
    """Returns combined_score = 1 / (1 + RMS error of curve against the target); 1.0 is exact."""
    curve = getattr(_load(program_path), "curve", None)
    if not callable(curve):
        return _failed("the program defines no curve(x) function; keep the name curve")
    values = {}
    for x in XS:
        y = curve(x)
        if isinstance(y, bool) or not isinstance(y, numbers.Real):
            return _failed(f"curve({x}) returned {type(y).__name__}; it must return one number")
        try:
            values[x] = float(y)
        except OverflowError:
            values[x] = math.inf
        if not math.isfinite(values[x]) or abs(values[x]) > 1e100:
            return _failed(f"curve({x}) returned {y!r}; return a finite number of sensible size")
    rmse = math.sqrt(math.fsum((values[x] - target(x)) ** 2 for x in XS) / len(XS))
    return Result({"combined_score": 1.0 / (1.0 + rmse), "rmse": rmse, "validity": 1.0},
                  _feedback(values))


def _feedback(values: dict[float, float]) -> str:
    """Returns whether the curve lies mostly below or above the target (short for small models)."""
    below = sum(values[x] < target(x) for x in XS)
    return f"The curve is mostly {'below' if 2 * below > len(XS) else 'above'} the target."


def _load(program_path: str) -> Any:
    """Returns the candidate program imported as a module from its file."""
    spec = importlib.util.spec_from_file_location("candidate_program", program_path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {program_path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _failed(reason: str) -> Result:
    """Returns the zero-score result of an unusable curve, with the reason as feedback."""
    return Result({"combined_score": 0.0, "rmse": 1e9, "validity": 0.0}, f"invalid: {reason}")
