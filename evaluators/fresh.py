"""One fresh sandboxed process per evaluation, host side: run it, read its result, name its death.

`evaluate_fresh(job)` runs `python -s -P -m evaluators.harness JOB RESULT` (the child side, see
evaluators/harness.py) in a new work dir under the active isolation layers. The two phases of a
two-phase job (evaluators/two_phase.py) run their child module the same way, with run_child().
A process that ends without writing a result gets a failure that says how it died (death_failure);
pre-forked answers (evaluators/prefork.py) are described in the same words. Every result carries
the sandbox layers it ran under (recorded); one the isolation policy refuses never starts.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import math
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

from evaluators.harness import SEED_VAR, TAIL_CHARS
from evaluators.isolation import layers, sandbox
from evaluators.isolation.limits import Limits, clip
from evaluators.jobs import EvalJob, EvalResult, FailureKind

HARNESS = "evaluators.harness"  # the child module a fresh evaluation runs
_MEMORY_SIGNS = ("MemoryError", "std::bad_alloc", "Cannot allocate memory", "out of memory")
_RUN_IDS = itertools.count(1)


def evaluate_fresh(job: EvalJob, python: str = sys.executable, *,
                   check: bool = False) -> EvalResult:
    """Returns the result of job, scored in a new sandboxed process (check=True: load only)."""
    with scratch_dir() as root:
        result, outcome = run_child(root, job, python, [HARNESS, *(["--check"] if check else [])])
        result.duration_s = outcome.duration_s
        return with_output(result, outcome)


@contextlib.contextmanager
def scratch_dir() -> Iterator[Path]:
    """Yields a new temporary root with an empty work/ in it; removes the root afterwards."""
    root = Path(tempfile.mkdtemp(prefix="evoforge-eval-"))
    try:
        (root / "work").mkdir()
        yield root
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run_child(root: Path, job: EvalJob, python: str,
              args: list[str]) -> tuple[EvalResult, sandbox.SandboxOutcome]:
    """Returns (result or death, outcome) of `python -m ARGS root/job.json root/result.json`; a
    refusal by the isolation policy is a failed result of a process that never started."""
    job_path, result_path = root / "job.json", root / "result.json"
    argv = [python, "-s", "-P", "-m", *args, str(job_path), str(result_path)]
    limits = Limits(timeout_s=job.timeout_s, memory_mb=job.memory_mb)
    try:
        outcome, iso = run_isolated(argv, root, root / "work", job, python, limits)
    except (layers.Refused, sandbox.CgroupJoinFailed) as exc:  # nothing of the job ran
        never = sandbox.SandboxOutcome(returncode=None, signal=None, timed_out=False, stdout="",
                                       stderr="", duration_s=0.0, timeout_s=job.timeout_s)
        return EvalResult.failure(FailureKind.ISOLATION, str(exc)), never
    result = read_result(result_path) or death_failure(outcome, job)
    return recorded(result, iso.applied, iso.moved, outcome), outcome


def run_isolated(argv: list[str], root: Path, work: Path, job: EvalJob, python: str,
                 limits: Limits) -> tuple[sandbox.SandboxOutcome, layers.Isolation]:
    """Returns the outcome of argv under the layers of one evaluation, which writes the job (its
    paths in the staged problem copy, if any) to root/job.json first; kills whatever it left
    behind. Raises layers.Refused when the job's isolation policy refuses it."""
    run_id = f"{os.getpid()}-{next(_RUN_IDS)}-{uuid.uuid4().hex[:8]}"
    env = {layers.RUN_VAR: run_id, SEED_VAR: str(int(job.seed))}
    outcome: sandbox.SandboxOutcome | None = None
    try:
        with layers.isolation(cwd=str(work), writable=[str(root)], readable=problem_folders(job),
                              env=env, python=python, limits=limits, policy=job.isolation) as iso:
            (root / "job.json").write_text(json.dumps(placed(job, iso.moved).to_dict()))
            outcome = iso.run(argv, cwd=str(work), limits=limits, env=env)
    finally:
        layers.sweep(run_id, group=outcome.pid if outcome else None)
    return layers.unwrap_status(outcome, iso), iso


def problem_folders(job: EvalJob) -> list[str]:
    """Returns the folders an evaluation of job reads: the problem's and the evaluator's."""
    return [str(p) for p in (Path(job.problem_dir), job.evaluator_path.parent) if p.is_dir()]


def placed(job: EvalJob, moved: dict[str, str]) -> EvalJob:
    """Returns job with its problem folder and evaluator in their staged copies (moved)."""
    if not moved:
        return job
    return dataclasses.replace(job, problem_dir=layers.staged_path(job.problem_dir, moved),
                               evaluator_file=layers.staged_path(job.evaluator_path, moved))


def recorded(result: EvalResult, applied: tuple[str, ...], moved: dict[str, str],
             outcome: sandbox.SandboxOutcome | None = None) -> EvalResult:
    """Returns result with the layers it ran under (whatever the child wrote), and its messages
    and the process's output naming the problem's own folder instead of its staged copy."""
    result.layers = list(applied)
    for source, copy in moved.items():
        if result.error:
            result.error = result.error.replace(copy, source)
        if isinstance(result.artifacts, dict):
            for key, value in result.artifacts.items():
                if isinstance(value, str):
                    result.artifacts[key] = value.replace(copy, source)
        if outcome is not None:
            outcome.stdout = outcome.stdout.replace(copy, source)
            outcome.stderr = outcome.stderr.replace(copy, source)
    return result


def read_result(path: Path) -> EvalResult | None:
    """Returns the result a child wrote to path, or None when there is none or it is malformed."""
    try:
        data = json.loads(path.read_text())
        return EvalResult.from_dict(data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def with_output(result: EvalResult, outcome: sandbox.SandboxOutcome) -> EvalResult:
    """Returns result with the tails of the process's stdout and stderr in its artifacts."""
    result.artifacts["stdout"] = clip(outcome.stdout, TAIL_CHARS, head=False)
    result.artifacts["stderr"] = clip(outcome.stderr, TAIL_CHARS, head=False)
    return result


def death_failure(outcome: sandbox.SandboxOutcome, job: EvalJob) -> EvalResult:
    """Returns the failure for a process that ended without writing a result."""
    how = outcome.describe()
    if outcome.timed_out:
        return EvalResult.failure(FailureKind.TIMEOUT, how)
    last = next((ln.strip() for ln in reversed(outcome.stderr.splitlines()) if ln.strip()), "")
    if outcome.returncode != 0 and any(sign in outcome.stderr for sign in _MEMORY_SIGNS):
        return EvalResult.failure(FailureKind.MEMORY, f"ran out of memory ({last}) under the "
                                  f"{job.memory_mb} MiB address-space limit; use less memory or "
                                  "raise evaluation.memory_mb")
    if outcome.signal == "SIGXCPU":
        cpu = math.ceil(job.timeout_s) + 1
        return EvalResult.failure(FailureKind.TIMEOUT, f"{how}: used more than {cpu} s of CPU time")
    if outcome.signal:
        reason = f"the evaluation process was {how} before writing a result"
    else:
        reason = (f"the evaluation process exited with code {outcome.returncode} before writing "
                  "a result")
    if outcome.returncode == 0:
        reason += " (os._exit() or sys.exit() in the program or evaluator?)"
    return EvalResult.failure(FailureKind.CRASH,
                              reason + (f"; last stderr line: {last}" if last else ""))
