"""A fork server's child: forked ahead of its job as a spare, it rehearses, then runs one candidate.

evaluators/forkserver.py forks it and hands it one job on a pipe; `run` never returns. Imported
inside fork servers, so it imports nothing that registers fork handlers (threading, random).
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import resource
import sys
import time
import types
from pathlib import Path
from typing import Any

from evaluators import harness, phases, wire
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob, EvalResult, FailureKind


def run(module: Any, fds: tuple[int, int, int, int], role: str = "evaluate",
        sample: bytes = b"") -> None:
    """Runs one candidate in the forked child; never returns. Before its job arrives it takes its
    own session and pipes, drops every other descriptor and rehearses on sample; then it reads
    the job, applies the job's limits and runs it. Writes its result on the result pipe (send)
    and closes it; marks: when the job was read, when the setup ended, when the evaluation
    ended."""
    try:
        job_r, out_w, err_w, res_w = fds
        os.setsid()
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        keep = os.dup2(res_w, 3, inheritable=False)
        jobs = os.dup2(job_r, 4, inheritable=False)
        os.closerange(5, 65536)
        rehearse(sample, role)
        message = read_all(jobs)  # empty: the server went away
        entered = time.monotonic()
        at_entry = float(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)
        os.close(jobs)
        if not message:
            return
        try:
            where, fields, data = wire.read_job(message)
            job, work = EvalJob(**fields), Path(where)
        except Exception as exc:  # noqa: BLE001 - a request the host should not have sent
            failure = EvalResult.failure(FailureKind.CRASH,
                                         f"the pre-forked evaluator failed: {exc!r}")
            send(keep, (entered, entered, time.monotonic()), failure, at_entry)
            return
        os.makedirs(work, exist_ok=True)
        if data is not None:  # a score server's: the data it scores, written before the limits
            (work / phases.DATA_FILE).write_bytes(data)
        limits = Limits(timeout_s=job.timeout_s, memory_mb=job.memory_mb)
        for res, soft, hard in limits.rlimits():
            resource.setrlimit(res, (soft, hard))
        os.chdir(work)
        os.environ.update({"HOME": str(work), "TMPDIR": str(work),
                           harness.SEED_VAR: str(int(job.seed))})
        # random reseeds itself in a forked child (os.register_at_fork); numpy does not
        numpy = sys.modules.get("numpy")
        if numpy is not None:
            numpy.random.seed()
        ready = time.monotonic()
        if role == "produce":
            result = phases.produce(job, work / "program.py", work / phases.DATA_FILE)
        elif role == "score":
            result = phases.score_loaded(job, module, work / phases.DATA_FILE)
        else:
            result = harness.score(job, work / "program.py", module)
        send(keep, (entered, ready, time.monotonic()), result, at_entry)
    finally:
        os._exit(0)


def send(fd: int, marks: tuple[float, float, float], result: EvalResult,
         at_entry: float) -> None:
    """Writes the result on fd after its marks, this process's CPU ms and page faults until now
    and its page faults when the job arrived (at_entry), and closes fd: the server answers at
    this end of file, and reaps this process after."""
    use = resource.getrusage(resource.RUSAGE_SELF)
    usage = ((use.ru_utime + use.ru_stime) * 1000, float(use.ru_minflt), at_entry)
    data = wire.result(marks, usage, json.dumps(result.to_dict(), default=repr).encode())
    sys.stdout.flush()
    sys.stderr.flush()
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view):]
    os.close(fd)


SAMPLE = "def solve():\n    return 1.0\n"  # the program a spare rehearses with: ours, never a
# candidate's (a hostile one could keep the spare busy before its job)


def _import_program(path: str) -> dict[str, float]:
    """The stand-in evaluator's evaluate(): imports the program from its file, as most evaluators
    do first, and scores nothing."""
    spec = importlib.util.spec_from_file_location("program", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {"combined_score": 0.0}


STAND_IN = types.SimpleNamespace(evaluate=_import_program)  # never the problem's evaluator


def rehearse(sample: bytes, role: str = "evaluate") -> None:
    """Runs the child's own steps on a sample request while the spare waits, with nothing applied:
    the pages they write (the fork shares them with the server until then) are copied now, off
    the candidate's path. An evaluate server's spare runs the harness's whole path on SAMPLE, in
    the sample's folder (swept with the candidate's files), with STAND_IN for the evaluator; a
    produce server's runs the produce step on a program of ours that defines the entry function.
    The problem's own code never runs here. Leaves 64 of the 454 page copies a trivial candidate
    made after its job arrived."""
    with contextlib.suppress(Exception):  # best effort: the real steps report their own errors
        where, fields, _ = wire.read_job(sample)
        job, work = EvalJob(**{**fields, "code": SAMPLE}), Path(where)
        Limits(timeout_s=job.timeout_s, memory_mb=job.memory_mb).rlimits()
        os.makedirs(work, exist_ok=True)
        if role == "evaluate":
            result = harness.score(job, work / "program.py", STAND_IN)
        elif role == "produce" and job.entry.isidentifier():  # the program's entry: ours too
            job = EvalJob(**{**fields, "code": f"def {job.entry}():\n    return [0.0]\n"})
            result = phases.produce(job, work / "program.py", work / phases.DATA_FILE)
            sys.path.remove(str(work))  # produce put it first; the candidate's own goes there
        else:
            compile(SAMPLE, "program.py", "exec")
            result = EvalResult(status="ok", score=0.0, metrics={"combined_score": 0.0})
        body = json.dumps(result.to_dict(), default=repr).encode()
        wire.result((0.0, 0.0, 0.0), (0.0, 0.0, 0.0), body)


def read_all(fd: int) -> bytes:
    """Returns what fd gives until its end of file."""
    chunks = [os.read(fd, 1 << 16)]
    while chunks[-1]:
        chunks.append(os.read(fd, 1 << 16))
    return b"".join(chunks)
