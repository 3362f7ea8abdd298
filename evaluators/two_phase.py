"""Two-phase evaluation, host side: the candidate returns data in one sandbox, another scores it.

Phase 1 runs the candidate's entry function and keeps the data it returns; phase 2 runs in a fresh
sandbox that never sees the candidate's code and scores that data with a snapshot of the problem's
trusted scorer taken before the candidate ran (the child side of both is evaluators/phases.py).
Nothing the candidate's process does (monkeypatching, rewriting modules, forging result files) can
reach the scorer; all it controls is the data, which the scorer verifies strictly. With
evaluation.prefork both phases run in warm fork servers (evaluators/prefork.py) instead.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

from evaluators import fresh, pool
from evaluators.harness import TAIL_CHARS
from evaluators.isolation import layers
from evaluators.isolation.limits import clip
from evaluators.jobs import EvalJob, EvalResult, FailureKind
from evaluators.phases import DATA_FILE, SNAPSHOT_DIR, read_capped, scorer_path

PHASES = "evaluators.phases"  # the child module of both phases
_SCORER_DEATHS = (FailureKind.TIMEOUT, FailureKind.MEMORY, FailureKind.CRASH)


def evaluate_two_phase(job: EvalJob, python: str = sys.executable, *,
                       check: bool = False) -> EvalResult:
    """Returns the result of job: the program's data from one sandbox, scored in another."""
    started = time.monotonic()
    scorer = scorer_path(job)
    try:
        snapshot = scorer.read_bytes()
    except OSError:
        return EvalResult.failure(FailureKind.EVALUATOR, f"{scorer}: scorer file not found; check "
                                  "scorer in problem.toml (a file in the problem folder)")
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
    if "docker" in layers.active_names():  # one container per phase: no warm servers
        return evaluate_two_phase(dataclasses.replace(job, prefork=False), python)
    raw = pool.evaluate_preforked(job, python, role="produce")
    data = raw.artifacts.pop("_data", b"")
    produced = _trusted_part(raw)
    produced.artifacts.update({k: raw.artifacts.get(k, "") for k in ("stdout", "stderr")})
    if not produced.ok:
        produced.duration_s = time.monotonic() - started
        return produced
    if _read_or_empty(scorer) != snapshot:
        return _changed(scorer, started)
    blind = EvalJob(**{**job.to_dict(), "code": ""})  # the scorer's side never sees the code
    scored = _scorer_blame(pool.evaluate_preforked(blind, python, role="score",
                                                      scorer=snapshot, data=data))
    return _combined(produced, scored, data, started)


def _changed(scorer: Path, started: float) -> EvalResult:
    return EvalResult.failure(FailureKind.REJECTED, f"{scorer} changed while the program ran; a "
                              "program may not change the problem's files, so it is not scored",
                              duration_s=time.monotonic() - started)


def _combined(produced: EvalResult, scored: EvalResult, data: bytes,
              started: float) -> EvalResult:
    """Returns the scorer's result with the program's output beside the scorer's own, and the
    layers both sandboxes had."""
    scored.layers = [name for name in produced.layers if name in scored.layers]
    for name in ("stdout", "stderr"):
        scored.artifacts[f"scorer_{name}"] = scored.artifacts.pop(name, "")
        scored.artifacts[name] = produced.artifacts.get(name, "")
    scored.artifacts["data_bytes"] = len(data)
    scored.duration_s = time.monotonic() - started
    return scored


def _read_or_empty(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError:
        return b""


def _phase(job: EvalJob, python: str, mode: list[str], files: dict[str, bytes], scorer_name: str,
           *, keep: str | None = None) -> EvalResult:
    """Returns one sandboxed phase's result; with keep, its data bytes in artifacts["_data"]."""
    with fresh.scratch_dir() as root:
        for name, content in files.items():
            target = root / SNAPSHOT_DIR / scorer_name if name == "scorer" else root / name
            target.parent.mkdir(exist_ok=True)
            target.write_bytes(content)
        sent = job if mode[0] == "produce" else EvalJob(**{**job.to_dict(), "code": ""})
        result, outcome = fresh.run_child(root, sent, python, [PHASES, *mode])
        result = _trusted_part(result) if mode[0] == "produce" else _scorer_blame(result)
        fresh.with_output(result, outcome)
        if keep and result.ok:
            data, why = read_capped(root / keep, job.data_max_bytes)
            if data is None:
                return EvalResult.failure(FailureKind.OUTPUT, why, artifacts=result.artifacts)
            result.artifacts["_data"] = data
        return result


def _trusted_part(result: EvalResult) -> EvalResult:
    """Returns what may be kept of a result the candidate's process wrote: ok or a clipped error."""
    if result.ok:
        return EvalResult(status="ok", layers=result.layers)  # layers: written by the host
    kind = FailureKind.parse(result.error_kind) or FailureKind.CRASH
    artifacts = result.artifacts if isinstance(result.artifacts, dict) else {}
    trace = str(artifacts.get("traceback", ""))
    return EvalResult.failure(kind, clip(str(result.error), TAIL_CHARS),
                              artifacts={"traceback": clip(trace, TAIL_CHARS)},
                              layers=result.layers)


def _scorer_blame(result: EvalResult) -> EvalResult:
    """Returns result with a scorer process death named as such (the candidate never ran there)."""
    if not result.ok and result.error_kind in _SCORER_DEATHS:
        result.error = f"the trusted scorer {result.error}"
    return result
