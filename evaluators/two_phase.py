"""Two-phase evaluation: the candidate returns data in the sandbox, a separate process scores it.

Phase 1 (`python -s -P -m evaluators.two_phase produce JOB RESULT`) imports the candidate, calls its
entry function and writes what it returns as JSON (numpy arrays become lists). Phase 2
(`... score JOB DATA RESULT`) runs in a fresh sandbox that never sees the candidate's code: it loads
a snapshot of the problem's scorer taken before the candidate ran and calls `score(data)`, which
returns a dict of metrics or raises ValueError(reason) to reject the data. Nothing the candidate's
process does (monkeypatching, rewriting modules, forging result files) can reach the scorer; all it
controls is the data, which the scorer verifies strictly.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import os
import shutil
import stat
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from evaluators import runner
from evaluators.isolation import sandbox
from evaluators.jobs import EvalJob, EvalResult, FailureKind

DATA_FILE = "data.json"
SNAPSHOT_DIR = "trusted"
FAILURE_KINDS = frozenset(FailureKind)


# ---------------------------------------------------------------- parent side

def evaluate_two_phase(job: EvalJob, python: str = sys.executable, *,
                       check: bool = False) -> EvalResult:
    """Returns the result of job: the program's data from one sandbox, scored in another."""
    started = time.monotonic()
    scorer = _scorer_path(job)
    try:
        snapshot = scorer.read_bytes()
    except OSError:
        return EvalResult.failure("evaluator", f"{scorer}: scorer file not found; check scorer in "
                                  "problem.toml (a file in the problem folder)")
    if check:
        result = _phase(job, python, ["check"], {"scorer": snapshot}, scorer.name)
        result.duration_s = time.monotonic() - started
        return result
    if job.prefork:
        return _preforked(job, python, scorer, snapshot, started)
    produced = _phase(job, python, ["produce"], {}, scorer.name, keep=DATA_FILE)
    data = produced.artifacts.pop("_data", b"")
    if not produced.ok:
        produced.duration_s = time.monotonic() - started
        return produced
    if _read_or_empty(scorer) != snapshot:
        return _changed(scorer, started)
    scored = _phase(job, python, ["score"], {"scorer": snapshot, DATA_FILE: data}, scorer.name)
    return _combined(produced, scored, data, started)


def _preforked(job: EvalJob, python: str, scorer: Path, snapshot: bytes,
               started: float) -> EvalResult:
    """Returns the result of both phases in warm fork servers (evaluation.prefork): a produce
    server for the candidate and a score server that imported the scorer snapshot first."""
    from evaluators import prefork  # host side only: the sandboxed phases never need them
    from evaluators.isolation import layers

    if "docker" in layers.active_names():  # one container per phase: no warm servers
        return evaluate_two_phase(dataclasses.replace(job, prefork=False), python)
    raw = prefork.evaluate_preforked(job, python, role="produce")
    data = raw.artifacts.pop("_data", b"")
    produced = _trusted_part(raw)
    produced.artifacts.update({k: raw.artifacts.get(k, "") for k in ("stdout", "stderr")})
    if not produced.ok:
        produced.duration_s = time.monotonic() - started
        return produced
    if _read_or_empty(scorer) != snapshot:
        return _changed(scorer, started)
    blind = EvalJob(**{**job.to_dict(), "code": ""})  # the scorer's side never sees the code
    scored = _scorer_blame(prefork.evaluate_preforked(blind, python, role="score",
                                                      scorer=snapshot, data=data))
    return _combined(produced, scored, data, started)


def _changed(scorer: Path, started: float) -> EvalResult:
    return EvalResult.failure("rejected", f"{scorer} changed while the program ran; a program may "
                              "not change the problem's files, so it is not scored",
                              duration_s=time.monotonic() - started)


def _combined(produced: EvalResult, scored: EvalResult, data: bytes,
              started: float) -> EvalResult:
    """Returns the scorer's result with the program's output beside the scorer's own."""
    for name in ("stdout", "stderr"):
        scored.artifacts[f"scorer_{name}"] = scored.artifacts.pop(name, "")
        scored.artifacts[name] = produced.artifacts.get(name, "")
    scored.artifacts["data_bytes"] = len(data)
    scored.duration_s = time.monotonic() - started
    return scored


def _scorer_path(job: EvalJob) -> Path:
    path = Path(job.scorer)
    return path if path.is_absolute() else Path(job.problem_dir) / path


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _phase(job: EvalJob, python: str, mode: list[str], files: dict[str, bytes], scorer_name: str,
           *, keep: str | None = None) -> EvalResult:
    """Returns the result of one sandboxed phase; with keep, its data bytes in artifacts["_data"]."""
    root = Path(tempfile.mkdtemp(prefix="evoforge-eval-"))
    try:
        work = root / "work"
        work.mkdir()
        for name, content in files.items():
            target = root / SNAPSHOT_DIR / scorer_name if name == "scorer" else root / name
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(content)
        sent = job if mode[0] == "produce" else EvalJob(**{**job.to_dict(), "code": ""})
        job_path, result_path = root / "job.json", root / "result.json"
        job_path.write_text(json.dumps(sent.to_dict()))
        argv = [python, "-s", "-P", "-m", "evaluators.two_phase", *mode, str(job_path),
                str(result_path)]
        limits = sandbox.Limits(timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        outcome = runner._run_isolated(argv, root, work, job, python, limits)
        result = runner._read_result(result_path) or runner._death(outcome, job)
        result = _trusted_part(result) if mode[0] == "produce" else _scorer_blame(result)
        result.artifacts["stdout"] = sandbox.clip(outcome.stdout, runner.TAIL_CHARS, head=False)
        result.artifacts["stderr"] = sandbox.clip(outcome.stderr, runner.TAIL_CHARS, head=False)
        if keep and result.ok:
            data, why = read_capped(root / keep, job.data_max_bytes)
            if data is None:
                return EvalResult.failure("output", why, artifacts=result.artifacts)
            result.artifacts["_data"] = data
        return result
    finally:
        shutil.rmtree(root, ignore_errors=True)


def _trusted_part(result: EvalResult) -> EvalResult:
    """Returns what may be kept of a result the candidate's process wrote: ok, or a clipped error."""
    if result.ok:
        return EvalResult(status="ok")
    kind = result.error_kind if isinstance(result.error_kind, str) and \
        result.error_kind in FAILURE_KINDS else "crash"
    artifacts = result.artifacts if isinstance(result.artifacts, dict) else {}
    trace = str(artifacts.get("traceback", ""))
    return EvalResult.failure(kind, sandbox.clip(str(result.error), runner.TAIL_CHARS),
                              artifacts={"traceback": sandbox.clip(trace, runner.TAIL_CHARS)})


def _scorer_blame(result: EvalResult) -> EvalResult:
    """Returns result with a scorer process death named as such (the candidate never ran there)."""
    if not result.ok and result.error_kind in ("timeout", "memory", "crash"):
        result.error = f"the trusted scorer {result.error}"
    return result


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


# ---------------------------------------------------------------- child side

def main(argv: list[str] | None = None) -> None:
    """Runs one child phase: produce | score | check JOB_JSON RESULT_JSON; writes the result."""
    mode, job_path, result_path = list(sys.argv[1:] if argv is None else argv)
    sys.dont_write_bytecode = True
    job = EvalJob(**json.loads(Path(job_path).read_text()))
    root = Path(job_path).parent
    if mode == "produce":
        result = produce(job, Path.cwd() / "program.py", root / DATA_FILE)
    else:
        result = score_data(job, root / SNAPSHOT_DIR / _scorer_path(job).name,
                            root / DATA_FILE if mode == "score" else None)
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result.to_dict(), default=repr))
    os.replace(tmp, result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def produce(job: EvalJob, program: Path, data_path: Path) -> EvalResult:
    """Returns ok after writing what the program's entry function returns as JSON to data_path."""
    runner._RESERVE = bytearray(1 << 20)  # freed on MemoryError so the failure can be written
    program.write_text(job.code)
    label = f"{job.entry}()"
    sys.path.insert(0, str(program.parent))
    try:
        spec = importlib.util.spec_from_file_location("program", program)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is recorded
        return runner._exception_failure(exc, "importing the program", job, 0)
    fn = getattr(module, job.entry, None)
    if not callable(fn):
        return EvalResult.failure("rejected", f"the program defines no {label} function; keep "
                                  "the code outside the EVOLVE-BLOCK unchanged")
    try:
        data = fn()
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is recorded
        return runner._exception_failure(exc, label, job, 0)
    try:
        text = json.dumps(data, default=_plain)
    except (TypeError, ValueError, RecursionError) as exc:
        return EvalResult.failure("rejected", f"{label} returned data that is not numbers, lists "
                                  f"and dicts ({type(exc).__name__}: {str(exc)[:200]})")
    if len(text) > job.data_max_bytes:
        return EvalResult.failure("output", f"{label} returned {len(text)} bytes of data (as JSON); "
                                  f"the cap is {job.data_max_bytes}")
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
    except runner._Failed as failed:
        return failed.result
    if data_path is None:
        return EvalResult(status="ok", artifacts={"entry_points": "score"})
    return score_loaded(job, module, data_path)


def score_loaded(job: EvalJob, module: Any, data_path: Path) -> EvalResult:
    """Returns the verdict of an imported scorer module on the data in data_path."""
    try:
        data = json.loads(data_path.read_text())
    except (ValueError, RecursionError) as exc:
        return EvalResult.failure("rejected", f"the program's data is not valid JSON: {exc}")
    try:
        raw = module.score(data)
    except ValueError as exc:
        return EvalResult.failure("rejected", f"the scorer rejected the data: {exc}")
    except BaseException as exc:  # noqa: BLE001 - a scorer that breaks on odd data is recorded
        return runner._exception_failure(exc, "the scorer's score()", job, 0)
    feedback = raw.pop("feedback", None) if isinstance(raw, dict) else None
    try:
        metrics, artifacts = runner._normalise(raw, "score()", 0)
        if isinstance(feedback, str):
            artifacts["feedback"] = sandbox.clip(feedback, runner.ARTIFACT_CHARS)
        value = runner._final_score(metrics, artifacts, job)
    except runner._Failed as failed:
        return failed.result
    if not math.isfinite(value):
        return EvalResult.failure("invalid_metrics", f"score() gave {value!r}")
    return EvalResult(status="ok", score=value, metrics=metrics, artifacts=artifacts)


def load_scorer(job: EvalJob, path: Path) -> Any:
    """Returns the scorer snapshot imported as a module, or raises runner._Failed("evaluator")."""
    shown = _scorer_path(job)
    sys.path.insert(0, str(Path(job.problem_dir).resolve()))  # helpers next to the scorer
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault(path.stem, module)
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - any failure at import is the scorer's
        what, artifacts = runner._explain(exc, job)
        raise runner._Failed(EvalResult.failure(
            "evaluator", f"{shown}: import failed: {what}; fix the scorer file",
            artifacts=artifacts)) from None
    if not callable(getattr(module, "score", None)):
        raise runner._Failed(EvalResult.failure(
            "evaluator", f"{shown}: defines no score(data); add a function score(data) that "
            "returns a dict of metrics and raises ValueError(reason) for invalid data"))
    return module


if __name__ == "__main__":
    main()
