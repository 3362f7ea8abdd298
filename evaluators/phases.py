"""The child side of a two-phase evaluation: produce the program's data, or score it.

Phase 1 (`python -s -P -m evaluators.phases produce JOB RESULT`) imports the candidate, calls its
entry function and writes what it returns as JSON (numpy arrays become lists). Phase 2
(`... score JOB DATA RESULT`) runs in a fresh sandbox that never sees the candidate's code: it loads
a snapshot of the problem's scorer taken before the candidate ran and calls `score(data)`, which
returns a dict of metrics or raises ValueError(reason) to reject the data. `check` only loads the
scorer. The host side is evaluators/two_phase.py; the fork server's produce and score roles call
produce() and score_loaded() here.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import stat
import sys
from pathlib import Path
from typing import Any

from evaluators import harness, tree
from evaluators.isolation.limits import clip
from evaluators.jobs import EvalJob, EvalResult, FailureKind

DATA_FILE = "data.json"   # the program's data, next to job.json
SNAPSHOT_DIR = "trusted"  # the scorer snapshot's folder, next to job.json


def main(argv: list[str] | None = None) -> None:
    """Runs one child phase: produce | score | check JOB_JSON RESULT_JSON; writes the result."""
    mode, job_path, result_path = list(sys.argv[1:] if argv is None else argv)
    sys.dont_write_bytecode = True
    job = EvalJob(**json.loads(Path(job_path).read_text()))
    root = Path(job_path).parent
    if mode == "produce":
        result = produce(job, Path.cwd() / "program.py", root / DATA_FILE)
    else:
        result = score_data(job, root / SNAPSHOT_DIR / scorer_path(job).name,
                            root / DATA_FILE if mode == "score" else None)
    harness.write_result_and_exit(result, result_path)


def scorer_path(job: EvalJob) -> Path:
    """Returns the problem's scorer file (job.scorer, relative to the problem folder)."""
    path = Path(job.scorer)
    return path if path.is_absolute() else Path(job.problem_dir) / path


def entry_point(entry: str, program: Path) -> tuple[Path, str]:
    """Returns (module file, function name) of a two-phase entry: `construct` names a function of
    a single-file program; a folder program names its file too, as in `main.py:construct`."""
    if ":" in entry:
        path, _, name = entry.rpartition(":")
        return (program / path if program.is_dir() else program), name
    return (program / "main.py" if program.is_dir() else program), entry


def produce(job: EvalJob, program: Path, data_path: Path) -> EvalResult:
    """Returns ok after writing what the program's entry function returns as JSON to data_path."""
    harness.hold_memory_reserve()
    written = tree.write(job.code, program)
    module_file, entry = entry_point(job.entry, written)
    label = f"{entry}()"
    sys.path.insert(0, str(written if written.is_dir() else written.parent))
    try:
        spec = importlib.util.spec_from_file_location(module_file.stem, module_file)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is recorded
        return harness.exception_failure(exc, "importing the program", job, 0)
    fn = getattr(module, entry, None)
    if not callable(fn):
        return EvalResult.failure(FailureKind.REJECTED, f"the program defines no {label} "
                                  "function; keep the code outside the EVOLVE-BLOCK unchanged")
    try:
        data = fn()
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is recorded
        return harness.exception_failure(exc, label, job, 0)
    try:
        text = json.dumps(data, default=_plain)
    except (TypeError, ValueError, RecursionError) as exc:
        return EvalResult.failure(FailureKind.REJECTED, f"{label} returned data that is not "
                                  f"numbers, lists and dicts ({type(exc).__name__}: "
                                  f"{str(exc)[:200]})")
    if len(text) > job.data_max_bytes:
        return EvalResult.failure(FailureKind.OUTPUT, f"{label} returned {len(text)} bytes of data "
                                  f"(as JSON); the cap is {job.data_max_bytes}")
    data_path.write_text(text)
    return EvalResult(status="ok")


def _plain(value: Any) -> Any:
    """Returns numpy arrays and scalars as lists and Python numbers (json.dumps default hook)."""
    if type(value).__module__ == "numpy" and hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple | set | frozenset):
        return list(value)
    if isinstance(value, complex):
        raise TypeError("complex numbers are not real numbers")
    raise TypeError(f"{type(value).__name__} is not JSON data")


def score_data(job: EvalJob, scorer: Path, data_path: Path | None) -> EvalResult:
    """Returns the scorer's verdict on the data (data_path None: only check that it loads)."""
    try:
        module = load_scorer(job, scorer)
    except harness.Failed as failed:
        return failed.result
    if data_path is None:
        return EvalResult(status="ok", artifacts={"entry_points": "score"})
    return score_loaded(job, module, data_path)


def score_loaded(job: EvalJob, module: Any, data_path: Path) -> EvalResult:
    """Returns the verdict of an imported scorer module on the data in data_path."""
    try:
        data = json.loads(data_path.read_text())
    except (ValueError, RecursionError) as exc:
        return EvalResult.failure(FailureKind.REJECTED, f"the program's data is not valid JSON: "
                                  f"{exc}")
    try:
        raw = module.score(data)
    except ValueError as exc:
        return EvalResult.failure(FailureKind.REJECTED, f"the scorer rejected the data: {exc}")
    except BaseException as exc:  # noqa: BLE001 - a scorer that breaks on odd data is recorded
        return harness.exception_failure(exc, "the scorer's score()", job, 0)
    feedback = raw.pop("feedback", None) if isinstance(raw, dict) else None
    try:
        metrics, artifacts = harness.normalise(raw, "score()", 0)
        if isinstance(feedback, str):
            artifacts["feedback"] = clip(feedback, harness.ARTIFACT_CHARS)
        value = harness.final_score(metrics, artifacts, job)
    except harness.Failed as failed:
        return failed.result
    if not math.isfinite(value):
        return EvalResult.failure(FailureKind.INVALID_METRICS, f"score() gave {value!r}")
    return EvalResult(status="ok", score=value, metrics=metrics, artifacts=artifacts)


def load_scorer(job: EvalJob, path: Path) -> Any:
    """Returns the scorer snapshot imported as a module, or raises harness.Failed("evaluator")."""
    shown = scorer_path(job)
    sys.path.insert(0, str(Path(job.problem_dir).resolve()))  # helpers next to the scorer
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - any failure at import is the scorer's
        what, artifacts = harness.explain(exc, job)
        raise harness.Failed(EvalResult.failure(
            FailureKind.EVALUATOR, f"{shown}: import failed: {what}; fix the scorer file",
            artifacts=artifacts)) from None
    if not callable(getattr(module, "score", None)):
        raise harness.Failed(EvalResult.failure(
            FailureKind.EVALUATOR, f"{shown}: defines no score(data); add a function score(data) "
            "that returns a dict of metrics and raises ValueError(reason) for invalid data"))
    return module


def read_capped(path: Path, cap: int) -> tuple[bytes | None, str]:
    """Returns (bytes, "") of a regular file of at most cap bytes, never following links."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        return None, f"the program's data file could not be read ({exc.strerror})"
    with os.fdopen(fd, "rb") as handle:
        info = os.fstat(handle.fileno())
        if not stat.S_ISREG(info.st_mode):
            return None, "the program's data file is not a regular file"
        data = handle.read(cap + 1)
    if len(data) > cap:
        return None, (f"the program returned more than {cap} bytes of data (as JSON); return only "
                      "what the scorer needs")
    return data, ""


if __name__ == "__main__":
    main()
