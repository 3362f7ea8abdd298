"""OpenEvolve entry of a two-phase problem: runs the program's entry function, then the scorer.

evoforge does not use this file: a two-phase problem.toml names `scorer` and `entry`, and evoforge
runs the program in one sandbox and the scorer in another. For OpenEvolve,
`evoforge problems export PROBLEM OUT` copies the problem folder and this file as OUT/evaluator.py;
on import it reads `entry` and `scorer` from the problem.toml beside it, and evaluate() returns the
scorer's metrics (invalid data scores 0 with the reason as feedback). It needs only the standard
library and the scorer's imports, so it runs in OpenEvolve's own environment.
"""

from __future__ import annotations

import importlib.util
import json
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

FOLDER = Path(__file__).resolve().parent


def _declaration(folder: Path) -> tuple[str, Path]:
    """Returns (entry function name, scorer path) from folder/problem.toml's [problem] table."""
    toml = folder / "problem.toml"
    try:
        meta = tomllib.loads(toml.read_text()).get("problem", {})
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ImportError(f"{toml}: cannot read it ({exc}); export the problem with "
                          "`evoforge problems export PROBLEM OUT`") from None
    if "entry" not in meta or "scorer" not in meta:
        raise ImportError(f"{toml}: [problem] needs entry and scorer (a two-phase problem) for "
                          "this OpenEvolve entry; a one-phase problem has its own evaluator.py")
    return str(meta["entry"]), folder / str(meta["scorer"])


def _module(name: str, path: str | Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ENTRY, SCORER = _declaration(FOLDER)
scorer = _module(f"{FOLDER.name}_scorer", SCORER)

try:  # OpenEvolve accepts a dict or its EvaluationResult; evoforge any .metrics / .artifacts
    from openevolve.evaluation_result import EvaluationResult as _Result
except ImportError:
    _Result = None


class Result:
    """Metrics plus artifacts (the feedback text shown to the LLM)."""

    def __init__(self, metrics: dict[str, float], feedback: str) -> None:
        self.metrics = metrics
        self.artifacts = {"feedback": feedback}


def evaluate(program_path: str) -> Any:
    """Returns the scorer's metrics for the program's data; invalid data scores 0, with why."""
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
    return _result(metrics, feedback)


def _plain(value: Any) -> Any:
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, complex):
        raise TypeError("complex numbers are not real numbers")
    raise TypeError(f"{type(value).__name__} is not JSON data")


def _invalid(reason: str) -> Any:
    """Returns the zero-score result of invalid data (0 is the worst combined_score)."""
    return _result({"combined_score": 0.0, "validity": 0.0}, f"invalid: {reason}")


def _result(metrics: dict[str, float], feedback: str) -> Any:
    """Returns OpenEvolve's EvaluationResult where OpenEvolve is installed, else a Result."""
    if _Result is not None:
        return _Result(metrics=metrics, artifacts={"feedback": feedback})
    return Result(metrics, feedback)
