"""Scores how closely curve(x) of a three-file program follows a hidden target curve on [-2, 2].

The program is a folder: its evaluator gets the folder's path, imports curve.py from it (curve.py
imports bend.py and line.py beside it) and scores as the single-file quickstart does.
"""

from __future__ import annotations

import importlib.util
import math
import numbers
import sys
from pathlib import Path
from typing import Any

XS = [i / 10 for i in range(-20, 21)]  # 41 points from -2 to 2


def target(x: float) -> float:
    """Returns the hidden target curve at x (the program is never shown it)."""
    return x * x + x + 1.0


def evaluate(program_path: str) -> dict[str, Any]:
    """Returns combined_score = 1 / (1 + RMS error of curve against the target), 1.0 exact, and
    which part of the curve is off as feedback."""
    folder = Path(program_path)
    if not folder.is_dir():
        return _failed("the program must be a folder holding curve.py, bend.py and line.py")
    curve = _import(folder, "curve").curve  # a file that fails to import: the traceback is
    # the feedback (the harness records it)
    values = {}
    for x in XS:
        y = curve(x)
        if isinstance(y, bool) or not isinstance(y, numbers.Real) or not math.isfinite(y) \
                or abs(y) > 1e100:
            return _failed(f"curve({x}) returned {y!r}; it must return one finite number")
        values[x] = float(y)
    rmse = math.sqrt(math.fsum((values[x] - target(x)) ** 2 for x in XS) / len(XS))
    below = sum(values[x] < target(x) for x in XS)
    return {"combined_score": 1.0 / (1.0 + rmse), "rmse": rmse, "validity": 1.0,
            "feedback": f"The curve is mostly {'below' if 2 * below > len(XS) else 'above'} "
                        "the target."}


def _import(folder: Path, name: str) -> Any:
    """Returns the module `name` of the program folder, its sibling files importable."""
    for sibling in ("curve", "bend", "line"):
        sys.modules.pop(sibling, None)  # a folder scored before in this process left its own
    sys.path.insert(0, str(folder))
    try:
        spec = importlib.util.spec_from_file_location(name, folder / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(folder))


def _failed(reason: str) -> dict[str, Any]:
    """Returns the zero-score result of an unusable program, with the reason as feedback."""
    return {"combined_score": 0.0, "rmse": 1e9, "validity": 0.0, "feedback": f"invalid: {reason}"}
