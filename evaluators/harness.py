"""The child side of an evaluation: load the evaluator, run its cascade, validate what it returns.

`python -s -P -m evaluators.harness [--check] JOB_JSON RESULT_JSON` runs in a fresh work dir inside
the sandbox (evaluators/fresh.py starts it). `-s -P` is `-I` without `-E`: the sandbox's environment
is already minimal, and keeping it read lets PYTHONHASHSEED=0 make evaluations repeatable. The fork
server (evaluators/forkserver.py) and the two phases (evaluators/phases.py) use the same functions.
Imports only the job contract and the sandbox helpers: nothing host-side runs next to a candidate.
"""

from __future__ import annotations

import importlib.util
import json
import math
import numbers
import os
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

from evaluators import tree
from evaluators.isolation.limits import clip
from evaluators.jobs import EvalJob, EvalResult, FailureKind

ARTIFACT_CHARS = 32 * 1024   # kept per artifact value (head + tail)
TAIL_CHARS = 8 * 1024        # kept of stdout / stderr / traceback (tail)
RESERVE_BYTES = 1 << 20      # freed on MemoryError so the failure can still be written
COMPAT = Path(__file__).resolve().parent / "compat"
SEED_VAR = "EVOFORGE_EVAL_SEED"  # the job's seed, for evaluators that sample (fresh seeds re-check)

_reserve: bytearray | None = None  # owned here: hold_memory_reserve() and exception_failure()


class Failed(Exception):
    """Carries a failed EvalResult out of the cascade (or out of loading an evaluator or scorer)."""

    def __init__(self, result: EvalResult) -> None:
        super().__init__(result.error)
        self.result = result


def hold_memory_reserve() -> None:
    """Sets aside RESERVE_BYTES unless held (a forked child shares its server's, no page copied)."""
    global _reserve
    if _reserve is None:
        _reserve = bytearray(RESERVE_BYTES)


def main(argv: list[str] | None = None) -> None:
    """Runs the child side: reads JOB_JSON, scores or checks it, writes RESULT_JSON, exits."""
    args = list(sys.argv[1:] if argv is None else argv)
    check = "--check" in args
    job_path, result_path = [a for a in args if a != "--check"]
    sys.dont_write_bytecode = True
    job = EvalJob(**json.loads(Path(job_path).read_text()))
    result = check_evaluator(job) if check else score(job, Path.cwd() / "program.py")
    write_result_and_exit(result, result_path)


def write_result_and_exit(result: EvalResult, result_path: str) -> None:
    """Writes result to result_path atomically, flushes the output and exits without cleanup."""
    tmp = Path(result_path + ".tmp")
    tmp.write_text(json.dumps(result.to_dict(), default=repr))
    os.replace(tmp, result_path)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)  # skip joining threads and atexit hooks the candidate may have left behind


def check_evaluator(job: EvalJob) -> EvalResult:
    """Returns ok when the evaluator imports and defines evaluate(), else an "evaluator" failure."""
    try:
        module = load_evaluator(job)
    except Failed as failed:
        return failed.result
    names = ["evaluate"] + [f"evaluate_stage{k}" for k in range(1, len(_stages(module)) + 1)]
    return EvalResult(status="ok", artifacts={"entry_points": ", ".join(names)})


def score(job: EvalJob, program: Path, module: ModuleType | None = None) -> EvalResult:
    """Returns job.code written to program (a folder program: its tree) and scored by the cascade
    (module: already imported)."""
    hold_memory_reserve()
    started = time.monotonic()
    program = tree.write(job.code, program)  # a folder program: its tree beside the file
    try:
        result = _cascade(module or load_evaluator(job), str(program), job)
    except Failed as failed:
        result = failed.result
    except MemoryError as exc:  # raised again while recording a first MemoryError
        result = exception_failure(exc, "evaluation", job, 0)
    result.duration_s = time.monotonic() - started
    return result


def load_evaluator(job: EvalJob) -> ModuleType:
    """Returns the imported evaluator, or raises Failed("evaluator") naming file and fix."""
    path = job.evaluator_path
    if not path.is_file():
        raise Failed(EvalResult.failure(FailureKind.EVALUATOR, f"{path}: evaluator file not found; "
                                        "check evaluator in problem.toml"))
    for folder in {path.parent.resolve(), Path(job.problem_dir).resolve()}:
        sys.path.insert(0, str(folder))  # evaluators may import helper modules next to them
    sys.path.append(str(COMPAT))  # OpenEvolve evaluators' imports, unless OpenEvolve is there
    spec = importlib.util.spec_from_file_location(path.stem, path)
    module = importlib.util.module_from_spec(spec)
    if path.stem not in sys.modules:  # lets helpers next to it `import evaluator`
        sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    except BaseException as exc:  # noqa: BLE001 - any failure at import is the evaluator's
        if isinstance(exc, MemoryError):
            raise Failed(exception_failure(exc, "importing the evaluator", job, 0)) from None
        what, artifacts = explain(exc, job)
        raise Failed(EvalResult.failure(
            FailureKind.EVALUATOR, f"{path}: import failed: {what}; fix the evaluator file (or "
            "install the module it imports)", artifacts=artifacts)) from None
    if not callable(getattr(module, "evaluate", None)):
        raise Failed(EvalResult.failure(
            FailureKind.EVALUATOR, f"{path}: defines no evaluate(program_path); add a function "
            "evaluate(program_path) that returns a dict of metrics such as "
            "{'combined_score': 0.5}"))
    return module


def _stages(module: ModuleType) -> list[Callable[[str], Any]]:
    stages, k = [], 1
    while callable(getattr(module, f"evaluate_stage{k}", None)):
        stages.append(getattr(module, f"evaluate_stage{k}"))
        k += 1
    return stages


def _cascade(module: ModuleType, program: str, job: EvalJob) -> EvalResult:
    """Returns the result of the cascade (stages, when thresholds are set), or of evaluate()."""
    stages = _stages(module) if job.cascade_thresholds else []
    if stages and job.cascade_gates:
        return _gates(stages, module, program, job)
    if stages:
        return _merged(stages, program, job)
    metrics, artifacts = _call(module.evaluate, "evaluate()", program, job, 0)
    return EvalResult(status="ok", score=final_score(metrics, artifacts, job), metrics=metrics,
                      artifacts=artifacts)


def _merged(stages: list[Callable[[str], Any]], program: str, job: EvalJob) -> EvalResult:
    """Returns OpenEvolve's cascade: the merged metrics of the stages run, up to the first below
    its threshold; a program stopped there is scored by what it has (not a failure)."""
    thresholds = job.cascade_thresholds
    metrics: dict[str, float] = {}
    artifacts: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for k, stage in enumerate(stages, start=1):
        try:
            got, extra = _call(stage, f"evaluate_stage{k}()", program, job, k)
        except Failed as failed:
            if k == 1:  # nothing to keep: the failure (with its traceback) is the result
                raise
            # a later stage that breaks keeps the stages before it, marked as OpenEvolve does
            metrics[f"stage{k}_passed"] = 0.0
            artifacts.update({f"stage{k}_stderr": failed.result.error or "",
                              f"stage{k}_traceback": failed.result.artifacts.get("traceback", ""),
                              "failure_stage": f"stage{k}"})
            records.append({"stage": k, "metrics": {}, "value": None, "compared": "",
                            "threshold": None, "passed": False, "error": failed.result.error})
            break
        if k == 1:
            metrics = dict(got)
        else:  # merging drops a numeric `error` metric, as OpenEvolve does
            metrics = {n: v for n, v in (metrics | got).items() if n != "error"}
        artifacts.update(extra)
        threshold = thresholds[k - 1] if k <= len(thresholds) else None
        records.append(stage_record(k, got, metrics, threshold, job.score_metric))
        if records[-1]["passed"] is not True:  # below its threshold, or no threshold to go on
            break
    try:
        value = final_score(metrics, artifacts, job)
    except Failed as failed:
        failed.result.stage, failed.result.stages = records[-1]["stage"], records
        failed.result.error = (f"the cascade ended at stage {records[-1]['stage']}, whose merged "
                               f"metrics are all there is to score: {failed.result.error}")
        raise
    return EvalResult(status="ok", score=value, metrics=metrics, artifacts=artifacts,
                      stage=records[-1]["stage"], stages=records)


def _gates(stages: list[Callable[[str], Any]], module: ModuleType, program: str,
           job: EvalJob) -> EvalResult:
    """Returns the result of stage gates (cascade_gates): a stage below its threshold fails the
    program (kind cascade, that stage's metrics kept); past every gate, evaluate() scores it."""
    thresholds = job.cascade_thresholds
    artifacts: dict[str, Any] = {}
    records: list[dict[str, Any]] = []
    for k, stage in enumerate(stages, start=1):
        metrics, extra = _call(stage, f"evaluate_stage{k}()", program, job, k)
        artifacts.update(extra)
        threshold = thresholds[k - 1] if k <= len(thresholds) else None
        records.append(stage_record(k, metrics, metrics, threshold, job.score_metric))
        if records[-1]["passed"] is False:
            rec = records[-1]
            got = ("no numeric metric" if rec["value"] is None
                   else f"{rec['value']:g} ({rec['compared']})")
            return EvalResult.failure(
                FailureKind.CASCADE, f"cascade gate {k} scored {got}, below its threshold "
                f"{threshold:g}; later stages and evaluate() were skipped",
                metrics=metrics, artifacts=artifacts, stage=k, stages=records)
    metrics, extra = _call(module.evaluate, "evaluate()", program, job, 0)
    artifacts.update(extra)
    return EvalResult(status="ok", score=final_score(metrics, artifacts, job), metrics=metrics,
                      artifacts=artifacts, stages=records)


def stage_record(k: int, got: dict[str, float], merged: dict[str, float], threshold: float | None,
                 score_metric: str) -> dict[str, Any]:
    """Returns what stage k did: its metrics, the value compared with its threshold (from the
    merged metrics) and passed: True or False against the threshold, None without a threshold
    (OpenEvolve's cascade then ends; gates let the program on)."""
    value, compared = stage_value(merged, score_metric)
    passed = None if threshold is None else value is not None and value >= threshold
    return {"stage": k, "metrics": dict(got), "value": value, "compared": compared,
            "threshold": threshold, "passed": passed}


def stage_value(metrics: dict[str, float], score_metric: str) -> tuple[float | None, str]:
    """Returns (value, what it is) compared with a stage's threshold: the score metric, else
    combined_score, else the mean of the metrics other than `error` (OpenEvolve's rule)."""
    for name in (score_metric, "combined_score"):
        if name in metrics:
            return metrics[name], name
    values = [v for n, v in metrics.items() if n != "error"]
    if values:
        return sum(values) / len(values), "mean of the metrics"
    return None, ""


def _call(fn: Callable[[str], Any], label: str, program: str, job: EvalJob,
          stage: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Returns (metrics, artifacts) from one evaluator function, or raises Failed."""
    try:
        raw = fn(program)
    except BaseException as exc:  # noqa: BLE001 - every failure of untrusted code is recorded
        raise Failed(exception_failure(exc, label, job, stage)) from None
    return normalise(raw, label, stage)


def normalise(raw: Any, label: str, stage: int) -> tuple[dict[str, float], dict[str, Any]]:
    """Returns checked float metrics and JSON-safe artifacts, or raises Failed(invalid_metrics).
    Takes a dict of metrics (its key "artifacts", a dict, holds artifacts), an object with a
    .metrics dict (and .artifacts), or a dict of only those two keys (OpenEvolve's examples return
    {"metrics": {...}, "artifacts": {...}}, or artifacts beside the metrics)."""
    if isinstance(raw, dict) and isinstance(raw.get("metrics"), dict) \
            and set(raw) <= {"metrics", "artifacts"}:
        raw = SimpleNamespace(**raw)
    if isinstance(raw, dict) and isinstance(raw.get("artifacts"), dict):
        given, artifacts = {k: v for k, v in raw.items() if k != "artifacts"}, raw["artifacts"]
    elif isinstance(raw, dict):
        given, artifacts = raw, {}
    elif isinstance(getattr(raw, "metrics", None), dict):
        given, artifacts = raw.metrics, getattr(raw, "artifacts", None) or {}
        if not isinstance(artifacts, dict):
            artifacts = {"artifacts": artifacts}
    else:
        raise Failed(EvalResult.failure(
            FailureKind.INVALID_METRICS, f"{label} returned {type(raw).__name__}; expected a dict "
            "of metrics such as {'combined_score': 0.5} or an object with a .metrics dict",
            stage=stage))
    metrics, moved, artifacts = {}, [], dict(artifacts)
    for key, value in given.items():
        number = _to_float(value)
        if number is None:
            artifacts[str(key)] = value
            moved.append(f"{key} ({type(value).__name__})")
        elif not math.isfinite(number):
            raise Failed(EvalResult.failure(
                FailureKind.INVALID_METRICS, f"{label} returned {key} = {value!r}; every metric "
                "must be a finite number (no NaN or infinity)", stage=stage))
        else:
            metrics[str(key)] = number
    if moved:
        artifacts["metrics_note"] = ("non-numeric values moved from the metrics to the artifacts: "
                                     + ", ".join(moved))
    return metrics, {str(k): _artifact(v) for k, v in artifacts.items()}


def _to_float(value: Any) -> float | None:
    """Returns value as a float when it is a real number (bools, numpy scalars too), else None."""
    if type(value).__module__ == "numpy" and hasattr(value, "item"):
        try:
            value = value.item()
        except (ValueError, TypeError):
            return None
    if not isinstance(value, numbers.Real):
        return None
    try:
        return float(value)
    except OverflowError:
        return math.inf


def final_score(metrics: dict[str, float], artifacts: dict[str, Any], job: EvalJob) -> float:
    """Returns the score metric (or the fallback mean), or raises Failed naming what is missing."""
    name = job.score_metric
    if name in metrics:
        return metrics[name]
    if name in artifacts:
        raise Failed(EvalResult.failure(
            FailureKind.INVALID_METRICS, f"evaluate() returned {name} = {artifacts[name]!r}; the "
            "score metric must be a finite number", metrics=metrics, artifacts=artifacts))
    if job.score_fallback_mean and metrics:
        return sum(metrics.values()) / len(metrics)
    keys = ", ".join(sorted(metrics)) or "no numeric metrics"
    raise Failed(EvalResult.failure(
        FailureKind.MISSING_SCORE, f"evaluate() returned no '{name}' metric (it returned: {keys}); "
        f"add '{name}' to the returned dict or set score_metric in problem.toml", metrics=metrics,
        artifacts=artifacts))


def _artifact(value: Any) -> Any:
    """Returns value as JSON-safe data, cut to ARTIFACT_CHARS characters."""
    if isinstance(value, bytes):
        value = value.decode("utf-8", errors="replace")
    if isinstance(value, str):
        return clip(value, ARTIFACT_CHARS)
    try:
        text = json.dumps(value, allow_nan=False, default=repr)
    except (ValueError, TypeError, RecursionError):
        return clip(repr(value), ARTIFACT_CHARS)
    return json.loads(text) if len(text) <= ARTIFACT_CHARS else clip(text, ARTIFACT_CHARS)


def exception_failure(exc: BaseException, label: str, job: EvalJob, stage: int) -> EvalResult:
    """Returns an "exception" (or, for MemoryError, "memory") failure naming the error and where."""
    global _reserve
    if isinstance(exc, MemoryError):
        _reserve = None
    what, artifacts = explain(exc, job)
    if isinstance(exc, MemoryError):
        return EvalResult.failure(FailureKind.MEMORY, f"{label} ran out of memory ({what}) under "
                                  f"the {job.memory_mb} MiB address-space limit; use less memory "
                                  "or raise evaluation.memory_mb", artifacts=artifacts, stage=stage)
    return EvalResult.failure(FailureKind.EXCEPTION, f"{label} raised {what}", artifacts=artifacts,
                              stage=stage)


def explain(exc: BaseException, job: EvalJob) -> tuple[str, dict[str, str]]:
    """Returns ('LAST TRACEBACK LINE at FILE:LINE', {"traceback": tail without evoforge frames})."""
    traceback.clear_frames(exc.__traceback__)  # drops locals (a memory bomb's data) first
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if f.filename != __file__ and not f.filename.startswith("<frozen")]
    only = traceback.format_exception_only(type(exc), exc)
    text = "".join(["Traceback (most recent call last):\n", *traceback.format_list(frames), *only])
    text = text.replace(str(Path.cwd()) + os.sep, "")  # the work dir is temporary: show program.py
    trace = clip(text, TAIL_CHARS, head=False)
    return only[-1].strip() + _where(exc, frames, job), {"traceback": trace}


def _where(exc: BaseException, frames: list[traceback.FrameSummary], job: EvalJob) -> str:
    """Returns ' at FILE:LINE (in FUNC)' for the innermost frame in the program or problem."""
    roots = [str(Path.cwd()), str(Path(job.problem_dir).resolve())]
    if isinstance(exc, SyntaxError) and exc.filename:
        return f" at {_short(exc.filename, roots)}:{exc.lineno}"
    ours = [f for f in frames if any(f.filename.startswith(r + os.sep) for r in roots)] or frames
    if not ours:
        return ""
    f = ours[-1]
    return f" at {_short(f.filename, roots)}:{f.lineno} (in {f.name})"


def _short(filename: str, roots: list[str]) -> str:
    for root in roots:
        if filename.startswith(root + os.sep):
            return filename[len(root) + 1:]
    return filename


if __name__ == "__main__":
    main()
