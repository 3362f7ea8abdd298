"""OpenEvolve entry: runs the program's construct() here, then the trusted scorer on its data.

evoforge does not use this file: problem.toml declares the two-phase form (scorer.py + entry), so
the program runs in one sandbox and scorer.py in another. OpenEvolve imports this evaluate().
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

ENTRY = "construct"


def _module(name: str, path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


scorer = _module(f"{Path(__file__).parent.name}_scorer", Path(__file__).with_name("scorer.py"))
violation = getattr(scorer, "violation", None)


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def evaluate(program_path: str) -> Result:
    """Returns the scorer's metrics for the program's data; invalid data scores 0 with the reason."""
    fn = getattr(_module("candidate_program", program_path), ENTRY, None)
    if not callable(fn):
        return _invalid(f"the program has no {ENTRY}() function; keep the code outside the "
                        "EVOLVE-BLOCK unchanged")
    try:
        data = json.loads(json.dumps(fn(), default=_plain))  # what the two-phase form passes on
    except (TypeError, ValueError) as exc:
        return _invalid(f"{ENTRY}() returned data that is not JSON numbers and lists: {exc}")
    try:
        metrics = scorer.score(data)
    except ValueError as exc:
        return _invalid(str(exc))
    feedback = str(metrics.pop("feedback", ""))
    return Result(metrics, feedback)


def _plain(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, complex):
        raise TypeError("complex numbers are not real numbers")
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _invalid(reason: str) -> Result:
    """Returns the zero-score result of invalid data (0 is the worst combined_score)."""
    return Result({"combined_score": 0.0, "validity": 0.0}, f"invalid: {reason}")
