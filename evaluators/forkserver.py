"""The pre-forked evaluator, inside the sandbox: imports the evaluator once, forks per candidate.

`python -s -P -m evaluators.forkserver SPEC_JSON` (started by evaluators/prefork.py) reads one
request at a time on stdin and answers one frame on stdout (evaluators/wire.py: binary headers, the
job's and the result's JSON forwarded, never parsed here). Per candidate it hands the job to a
child it forked ahead of the request (a spare, waiting on a pipe in its own session with its own
output pipes, which has rehearsed its own steps meanwhile), which applies the candidate's rlimits
and runs it. It waits, up to the wall-clock limit, for the end of the child's result pipe (the
harness closes it once the result is written) or for the child's end; after a request that kept it
idle it polls for the first 2 ms instead of sleeping, as a slept CPU wakes slowly. It answers with
the child's result, how it ended and what each step cost ("steps", ms). A child that ended
otherwise (killed, timed out, crashed) is killed with its process group and every process left
under this one before the answer (this process is a child subreaper, so orphans and setsid daemons
become its children); one that wrote its result is signalled at once and reaped, with the rest,
after the answer. Only then it cleans the work area, forks the next spare and names it in a frame
of its own (SPARE), before it reads the next request: the answer waits for neither the process's
exit, the file sweep nor a fork, and the next candidate still starts clean, in a process forked
after the last one was gone. The child never returns into this loop.

A server has one role (spec "role"): "evaluate" imports the problem's evaluator and scores each
candidate in its child; the two phases of a two-phase problem get a server each, never the same
one: "produce" runs the candidate's entry function and answers with the data it returned, capped;
"score" imports a snapshot of the trusted scorer before any data arrives and scores each request's
data in a child (it never sees a candidate's code).
"""

from __future__ import annotations

import contextlib
import ctypes
import gc
import importlib
import json
import os
import select
import signal
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

from evaluators import harness, phases, spare, wire
from evaluators.isolation import leftovers
from evaluators.isolation.limits import Capture, MiB
from evaluators.jobs import EvalJob, EvalResult, FailureKind

TIMED_OUT, EXITED, ENDED = "timed out", "exited", "ended"  # how waiting for a candidate ended
LOG = "forkserver.log"         # this process's stderr, in its root (read by the host if it dies)
SPIN_S = 0.002  # after an idle wait, polls this long for the candidate before it sleeps: a CPU
IDLE_S = 0.005  # that slept wakes slowly in a VM (0.9-1.1 ms against 0.25); not under load
RESULT_CAP = 16 * MiB          # bytes of result JSON read from a child; the rest is dropped
_PR_SET_CHILD_SUBREAPER, _PR_SET_DUMPABLE = 36, 4


class Spare(NamedTuple):
    """A child forked ahead of its job: its pid and this side of its pipes."""

    pid: int
    job_w: int  # the job goes here (then closed)
    out_r: int
    err_r: int
    res_r: int


class Server:
    """The loop: one evaluator module, one candidate at a time."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.root = Path(spec["root"])
        self.work_base = spec.get("work_base") or spec["root"]  # tmpfs where possible
        private = spec.get("private_dirs", [])  # wiped between candidates, as the root is
        self.swept = [str(self.root), *map(str, map(Path, private))]
        self.kept = {str(self.root / LOG), str(self.root), *map(str, self.root.parents)}  # the
        # log and our mount points
        self.count = 0
        self.cleaned_ms = 0.0  # the file sweep before this candidate (its "clean" step)
        self.spare: Spare | None = None
        self.unswept: int | None = None  # the last candidate, answered before it was reaped
        self.spin_s = 0.0  # how long the next candidate's first wait polls (main sets it)
        self.role = spec.get("role", "evaluate")
        job = EvalJob(**spec["job"])
        # what each spare rehearses while it waits: a request shaped like the real ones
        self.sample = wire.job_message(f"{self.work_base}/c0".encode(),
                                       json.dumps(spec["job"]).encode(), None)
        self.module, self.load_failure = None, None
        try:
            if self.role == "evaluate":
                self.module = harness.load_evaluator(job)
            elif self.role == "score":
                self.module = phases.load_scorer(job, Path(spec["scorer_snapshot"]))
            else:
                _warm(spec.get("warm", ()))
        except harness.Failed as failed:
            self.load_failure = failed.result

    def handle(self, nonce: int, timeout_s: float, output_bytes: int, data_max: int, job: bytes,
               data: bytes | None) -> bytes:
        """Returns the answer frame to one request: the candidate's result and how its process
        ended. The job's JSON goes to the child as it came: the child parses it."""
        if self.load_failure is not None:
            return _answer_of(nonce, self.load_failure)
        self.count += 1
        work = f"{self.work_base}/c{self.count}"
        return self._fork(nonce, timeout_s, output_bytes, data_max,
                          wire.job_message(work.encode(), job, data), work)

    def clean(self) -> None:
        """Removes what the last candidate left in the work area and the private dirs."""
        started = time.monotonic()
        for folder in self.swept:
            leftovers.remove_entries(folder, self.kept)
        self.cleaned_ms = (time.monotonic() - started) * 1000

    def fork_spare(self) -> None:
        """Forks the next candidate's process ahead of its request (once the last one is gone and
        its files swept): it waits for its job, so the fork is off the next answer's path."""
        if self.spare is not None or self.load_failure is not None:
            return
        job_r, job_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        res_r, res_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:
            spare.run(self.module, (job_r, out_w, err_w, res_w), self.role, self.sample)
        for fd in (job_r, out_w, err_w, res_w):
            os.close(fd)
        self.spare = Spare(pid, job_w, out_r, err_r, res_r)

    def _start(self, message: bytes) -> Spare:
        """Returns the child now running the job message: the spare, or a new one if it is gone."""
        for _ in range(2):
            self.fork_spare()
            child, self.spare = self.spare, None
            try:
                view = memoryview(message)
                while view:
                    view = view[os.write(child.job_w, view):]
                return child
            except OSError:  # it died waiting: reap it, fork another
                _finish(child.pid)
                for fd in (child.out_r, child.err_r, child.res_r):
                    os.close(fd)
            finally:
                os.close(child.job_w)
        raise OSError("no child could be started for the candidate")

    def _fork(self, nonce: int, timeout_s: float, output_bytes: int, data_max: int,
              message: bytes, work: str) -> bytes:
        start = time.monotonic()
        child = self._start(message)
        pid, out_r, err_r, res_r = child.pid, child.out_r, child.err_r, child.res_r
        out, err = Capture(output_bytes), Capture(output_bytes)
        result = bytearray()
        deadline = start + timeout_s
        ending = _pump(pid, deadline, {out_r: out, err_r: err, res_r: result}, res_r,
                       spin_s=self.spin_s)
        marks, body = wire.split_result(bytes(result)) if ending != TIMED_OUT else (None, b"")
        if ending == ENDED and marks is None:  # the candidate closed the pipe: wait for the end
            ending = _pump(pid, deadline, {out_r: out, err_r: err})
            marks, body = wire.split_result(bytes(result)) if ending != TIMED_OUT else (None, b"")
        ended = time.monotonic()
        if ending == ENDED and leftovers.only_child_alone(pid):  # the harness wrote the result
            # and exits, and the candidate left no process behind: reaped after the answer
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(pid, signal.SIGKILL)
            self.unswept, code = pid, 0
            usage = marks[3:] if marks else (wire.NAN,) * 3
        else:
            if ending == ENDED:  # it left a process: its own end first, then it and the rest
                _pump(pid, deadline, {out_r: out, err_r: err})
            status, rusage = _finish(pid)
            code = os.waitstatus_to_exitcode(status) if status is not None else None
            usage = (*_usage(rusage), marks[5] if marks else wire.NAN)
        _drain({out_r: out, err_r: err, res_r: result})
        for fd in (out_r, err_r, res_r):
            os.close(fd)
        produced = None
        if self.role == "produce":  # the host uses the data only with an "ok" result
            produced = phases.read_capped(Path(work) / phases.DATA_FILE, data_max)
        times = (self.cleaned_ms, start, *(marks[:3] if marks else (wire.NAN,) * 3), ended,
                 time.monotonic(), *usage)
        return wire.frame(wire.ANSWER, nonce=nonce, code=code,
                          sig=-code if code is not None and code < 0 else 0,
                          timed_out=ending == TIMED_OUT, duration_s=time.monotonic() - start,
                          times=times, dropped=(out.dropped, err.dropped), body=body,
                          stdout=out.raw(), stderr=err.raw(), produced=produced)

    def sweep(self) -> None:
        """Kills, reaps and sweeps up after the last candidate when its answer went out first."""
        if self.unswept is not None:
            _finish(self.unswept)
            self.unswept = None

def _answer_of(nonce: int, result: EvalResult) -> bytes:
    """Returns the answer frame carrying a result this process made itself (no child ran)."""
    return wire.frame(wire.ANSWER, nonce=nonce, body=json.dumps(result.to_dict()).encode())


def _pump(pid: int, deadline: float, sinks: dict[int, Any], until: int | None = None, *,
          spin_s: float = 0.0) -> str:
    """Reads the child's pipes until it exits (EXITED), the pipe `until` ends (ENDED) or the
    deadline passes (TIMED_OUT); returns which. Polls for the first spin_s, yielding the CPU
    between polls, before it sleeps."""
    pidfd = os.pidfd_open(pid)
    open_fds = set(sinks)
    spin_until = time.monotonic() + spin_s
    try:
        while True:
            now = time.monotonic()
            wait = deadline - now
            if wait <= 0:
                return TIMED_OUT
            spinning = now < spin_until
            ready, _, _ = select.select([pidfd, *open_fds], [], [], 0 if spinning else wait)
            if spinning and not ready:
                os.sched_yield()
                continue
            for fd in ready:
                if fd != pidfd and not _read_into(fd, sinks[fd]):
                    open_fds.discard(fd)
                    if fd == until:
                        return ENDED
            if pidfd in ready:
                return EXITED
    finally:
        os.close(pidfd)


def _read_into(fd: int, sink: Any) -> bool:
    """Reads what is there from fd into sink; returns False at end of file."""
    data = os.read(fd, 65536)
    if not data:
        return False
    if isinstance(sink, bytearray):
        if len(sink) < RESULT_CAP:
            sink += data[:RESULT_CAP - len(sink)]
    else:
        sink.add(data)
    return True


def _drain(sinks: dict[int, Any]) -> None:
    """Reads the rest of the pipes: every writer is dead now, so each ends at once."""
    for fd, sink in sinks.items():
        os.set_blocking(fd, False)
        try:
            while _read_into(fd, sink):
                pass
        except BlockingIOError:
            pass


def _finish(pid: int) -> tuple[int | None, Any]:
    """Kills the child's group and every process left under this one; returns the child's status
    and resource usage (None, None when it was reaped elsewhere)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    status = usage = None
    with contextlib.suppress(ChildProcessError):
        _, status, usage = os.wait4(pid, 0)
    leftovers.kill_descendants()
    return status, usage


def _usage(usage: Any) -> tuple[float, float]:
    """Returns the child's CPU ms and page faults (its process only), figures load moves little;
    NaN when it was reaped elsewhere."""
    if usage is None:
        return wire.NAN, wire.NAN
    return (usage.ru_utime + usage.ru_stime) * 1000, float(usage.ru_minflt)


def _warm(modules: list[str]) -> None:
    """Imports modules a produce server's candidates are likely to import (numpy, say), once."""
    for name in modules:
        with contextlib.suppress(ImportError):  # best effort: a candidate imports it itself
            importlib.import_module(name)


def _prctl(option: int, value: int) -> None:
    ctypes.CDLL(None, use_errno=True).prctl(option, value, 0, 0, 0)


def main(argv: list[str] | None = None) -> None:
    """Serves requests from stdin until it closes; the replies go to the original stdout."""
    args = list(sys.argv[1:] if argv is None else argv)
    spec = json.loads(args[0])
    sys.dont_write_bytecode = True
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)
    _prctl(_PR_SET_DUMPABLE, 0)  # candidates (same uid) cannot open our fds or ptrace us
    control = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)  # whatever the evaluator prints goes to the log, never onto the control pipe
    requests = os.fdopen(os.dup(0), "rb")
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    server = Server(spec)
    harness.hold_memory_reserve()  # each child's memory-error reserve, shared, not copied
    gc.collect()
    gc.freeze()  # keeps the forked children from copying the heap on their first collection
    server.fork_spare()
    control.write(wire.frame(wire.READY, pid=server.spare.pid if server.spare else -1))
    while True:
        waiting = time.monotonic()
        head = requests.read(wire.REQUEST.size)
        if len(head) < wire.REQUEST.size:
            break  # the host closed our stdin
        # a request that kept us waiting (a run's LLM call) finds the CPUs idle: poll the
        # candidate awhile; one already there (a batch) finds them busy: sleep at once
        server.spin_s = SPIN_S if time.monotonic() - waiting > IDLE_S else 0.0
        magic, nonce, timeout_s, output_bytes, data_max, job_len, data_len = \
            wire.REQUEST.unpack(head)
        if magic != wire.REQUEST_MAGIC:
            print("forkserver: a request that does not start as one; stopping", file=sys.stderr)
            break
        job = requests.read(job_len)
        data = None if data_len == wire.NO_DATA else requests.read(data_len)
        try:
            answer = server.handle(nonce, timeout_s, output_bytes, data_max, job, data)
        except Exception as exc:  # noqa: BLE001 - report, keep serving
            answer = _answer_of(nonce, EvalResult.failure(
                FailureKind.CRASH, f"the pre-forked evaluator failed: {exc!r}"))
        control.write(answer)
        server.sweep()  # after the answer: the last candidate's processes are gone
        server.clean()  # before the next request is read
        server.fork_spare()
        if server.spare is not None:  # a frame of its own: the host counts it as the server's
            control.write(wire.spare(server.spare.pid))
    leftovers.kill_descendants()
    os._exit(0)


if __name__ == "__main__":
    main()
