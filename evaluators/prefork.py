"""Pre-forked evaluation, host side: one long-lived sandboxed fork server for one problem.

A `ForkServer` starts evaluators/forkserver.py under the active layers (its own slot uid, one
bwrap, seccomp), sends it each job and reads the answer (the server does the per-candidate fork,
limits and cleanup). A server that dies, hangs past the job's limit or answers garbage raises
ServerDied; evaluators/pool.py, which keeps the warm servers of a process, then kills it with
everything of its uid, records a failure for the candidate and starts a fresh server for the next.

Two-phase jobs use two servers per problem (roles in evaluators/forkserver.py): a "produce" server
whose children run the candidate and hand back its data, and a "score" server that imported a
snapshot of the trusted scorer before any candidate ran; each has its own uid and bwrap, so the
candidate's processes cannot reach the scorer's.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import secrets
import shutil
import struct
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from evaluators import forkserver, fresh, wire
from evaluators.isolation import layers, sandbox
from evaluators.isolation.limits import Limits
from evaluators.jobs import EvalJob, EvalResult, FailureKind

START_TIMEOUT_S = 60.0   # importing the evaluator in a new server
GRACE_S = 10.0           # beyond the job's own limit, for the server's kill, sweep and answer
WARM_IMPORTS = ("numpy",)  # imported once by produce servers when present: candidates use it
SERVER_LIMITS = Limits(timeout_s=10 ** 7, memory_mb=None, open_files=1024, file_size_mb=256,
                       processes=128)  # 256: /tmp tmpfs size


class ServerDied(Exception):
    """The fork server ended or broke the protocol; the message says how."""


class ForkServer:
    """One sandboxed fork server for one problem's evaluator."""

    def __init__(self, job: EvalJob, python: str, role: str = "evaluate",
                 scorer: bytes | None = None) -> None:
        self.key = server_key(job, python, role, scorer)
        self.role = role
        shm = "/dev/shm" if os.access("/dev/shm", os.W_OK) else None  # tmpfs: no disk writes
        self.root = Path(tempfile.mkdtemp(prefix="evoforge-prefork-", dir=shm))
        self.run_id = f"{os.getpid()}-prefork-{secrets.token_hex(4)}"
        self.proc: subprocess.Popen | None = None
        self.applied: tuple[str, ...] = ()
        self.moved: dict[str, str] = {}
        self.placed: dict[tuple[str, str], tuple[str, str]] = {}  # a job's folder and evaluator
        # as spelled -> as placed in the staged copies (the key's stat says when they change)
        self._stack = contextlib.ExitStack()
        self._frames: wire.FrameReader | None = None
        self.steps: dict[str, float] = {}  # the last evaluation's step costs, ms (steps_of)
        self.spare: int | None = None  # the server's waiting child (its pid in the sandbox)
        try:
            self._start(job, python, scorer)
        except BaseException:
            self.close()
            raise

    def _start(self, job: EvalJob, python: str, scorer: bytes | None) -> None:
        env = {layers.RUN_VAR: self.run_id}
        iso = self._stack.enter_context(layers.isolation(
            cwd=str(self.root), writable=[str(self.root)], readable=fresh.problem_folders(job),
            env=env, python=python, limits=SERVER_LIMITS, policy=job.isolation))
        self.applied, self.moved = iso.applied, iso.moved
        private = ["/tmp", "/dev/shm"] if "bwrap" in iso.active else []
        loader = {**fresh.placed(job, self.moved).to_dict(), "code": ""}  # no candidate code
        spec = {"root": str(self.root), "private_dirs": private, "job": loader, "role": self.role,
                "work_base": "/tmp/evoforge-work" if private else str(self.root),
                "warm": list(WARM_IMPORTS)}
        if scorer is not None:  # the snapshot the score server imports before any data arrives
            snapshot = self.root / "trusted" / Path(job.scorer).name
            snapshot.parent.mkdir()
            snapshot.write_bytes(scorer)
            spec["scorer_snapshot"] = str(snapshot)
        argv = [python, "-s", "-P", "-m", "evaluators.forkserver", json.dumps(spec)]
        log = os.open(self.root / forkserver.LOG, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            self.proc = sandbox.spawn(argv, cwd=str(self.root), limits=SERVER_LIMITS, env=env,
                                      wrap=iso.wrap, pass_fds=iso.pass_fds, user=iso.user,
                                      stdin=subprocess.PIPE, stderr=log,
                                      cgroup=iso.cgroup.path if iso.cgroup else None)
        finally:
            os.close(log)
        self.layers = iso.active
        self._frames = wire.FrameReader(self.proc.stdout.fileno())
        hello = self._read_frame(time.monotonic() + START_TIMEOUT_S)
        if hello.get("ready") is not True:
            raise ServerDied(f"the fork server did not start: {hello}")
        self.spare = hello.get("spare")

    @property
    def alive(self) -> bool:
        """Returns True while the server process runs."""
        return self.proc is not None and self.proc.poll() is None

    def evaluate(self, job: EvalJob, data: bytes | None = None) -> EvalResult:
        """Returns the job's result (a produce server's data in artifacts["_data"]); raises
        ServerDied when the server broke (it is then closed)."""
        started = time.monotonic()
        nonce = secrets.randbits(64)
        fields = job.to_dict()
        if self.moved:  # the staged copies' paths, resolved once per problem folder
            spelled = (job.problem_dir, job.evaluator_file)
            if spelled not in self.placed:
                where = fresh.placed(job, self.moved)
                self.placed[spelled] = (where.problem_dir, where.evaluator_file)
            fields["problem_dir"], fields["evaluator_file"] = self.placed[spelled]
        if data is not None:  # as text, as the scorer reads it
            data = data.decode("utf-8", errors="replace").encode()
        request = wire.request(nonce, json.dumps(fields).encode(), job.timeout_s,
                               Limits(timeout_s=job.timeout_s).output_bytes,
                               job.data_max_bytes, data)
        sandbox.track(self.proc.pid)
        try:
            self.proc.stdin.write(request)
            self.proc.stdin.flush()
            deadline = time.monotonic() + job.timeout_s + GRACE_S
            while True:  # frames with another nonce are not this request's: ignored
                answer = self._read_frame(deadline)
                self._note_spare(answer)
                if answer.get("nonce") == nonce:
                    result = to_result(answer, job, self.applied, self.moved)
                    self.steps = steps_of(answer, time.monotonic() - started)
                    return result
        except (OSError, ValueError, TypeError, struct.error) as exc:
            raise ServerDied(f"the control pipe broke ({exc})") from None
        finally:
            sandbox.untrack(self.proc.pid)

    def _note_spare(self, frame: dict[str, Any]) -> None:
        """Keeps the pid a SPARE frame names: the server's child for its next candidate."""
        if "spare" in frame and "nonce" not in frame:
            self.spare = frame["spare"]

    def _read_frame(self, deadline: float) -> dict[str, Any]:
        try:
            return self._frames.next(deadline)
        except EOFError:
            raise ServerDied(self._death()) from None

    def _death(self) -> str:
        code = self.proc.wait(timeout=5) if self.proc else None
        log = ""
        with contextlib.suppress(OSError):
            log = (self.root / forkserver.LOG).read_text(errors="replace")[-2000:].strip()
        last = log.splitlines()[-1] if log else ""
        return (f"the pre-forked evaluator process ended (exit status {code})"
                + (f"; its last log line: {last}" if last else ""))

    def pids(self) -> list[int]:
        """Returns the host pids of the server itself: its wrappers down to the fork server, and
        the spare child it forked for its next candidate."""
        with contextlib.suppress(OSError, ValueError, TypeError, TimeoutError, ServerDied):
            while self.alive and self._frames.pending():  # frames sent while idle
                self._note_spare(self._read_frame(time.monotonic() + 1))
        found, kids = self._chain()
        return found + [kid for kid in kids or () if _inner_pid(kid) == self.spare]  # the fork
        # server's other children are candidates

    def server_pid(self) -> int | None:
        """Returns the host pid of the fork server process itself (below its wrappers), or None
        when it is gone."""
        chain, kids = self._chain()
        return chain[-1] if kids is not None else None

    def _chain(self) -> tuple[list[int], list[int] | None]:
        """Returns the host pids from the server's outer wrapper down to the fork server, and the
        fork server's children (None when the walk did not reach it)."""
        found, pid = [], self.proc.pid if self.alive else None
        while pid is not None:
            found.append(pid)
            try:
                cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
                kids = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
            except OSError:
                return found, None
            if os.path.basename(cmdline.split(b"\0", 1)[0]) not in (b"bwrap", b"prlimit"):
                return found, [int(kid) for kid in kids]  # the fork server
            pid = int(kids[0]) if len(kids) == 1 else None
        return found, None

    def close(self) -> None:
        """Kills the server and everything of its uid, reaps it, removes its files."""
        if self.proc is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, 9)
            for pipe in (self.proc.stdin, self.proc.stdout):
                with contextlib.suppress(OSError):
                    pipe.close()
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(timeout=5)
        self._stack.close()  # gives the uid back: kills every process it still has
        layers.sweep(self.run_id, group=self.proc.pid if self.proc else None)
        shutil.rmtree(self.root, ignore_errors=True)
        self.proc = None


def _inner_pid(pid: int) -> int | None:
    """Returns pid's pid in its innermost pid namespace (the sandbox's), or None if it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    line = next((ln for ln in status.splitlines() if ln.startswith("NSpid:")), "")
    return int(line.split()[-1]) if line.split()[1:] else None


def server_key(job: EvalJob, python: str, role: str = "evaluate",
               scorer: bytes | None = None) -> tuple:
    """Returns what a server is specific to: problem folder (as spelled), role, evaluator (the
    file it names now: its device, inode and mtime) or scorer snapshot, interpreter, layers,
    isolation policy. One stat per call; a folder reached by another spelling gets a server of
    its own."""
    if role == "score":
        what: tuple = (hashlib.sha256(scorer or b"").hexdigest(),)
    elif role == "produce":
        what = ()
    else:
        path = os.path.join(job.problem_dir, job.evaluator_file)
        try:
            info = os.stat(path)
            what = (path, info.st_dev, info.st_ino, info.st_mtime_ns)
        except OSError:
            what = (path, 0, 0, 0)
    return (os.path.abspath(job.problem_dir), role, *what, python, layers.active_names(),
            job.isolation)


def steps_of(answer: dict[str, Any], seconds: float) -> dict[str, float]:
    """Returns the ms of each step of one evaluation: the server's (wire.steps) and "channel",
    the rest of the host's seconds (both ends' frames and JSON, the pipe hops)."""
    steps = answer.get("steps")
    if not isinstance(steps, dict):
        return {}
    ms = {name: float(value) for name, value in steps.items() if isinstance(value, int | float)}
    server = sum(ms.get(k, 0.0) for k in ("start", "setup", "run", "result", "sweep"))
    ms["channel"] = round(seconds * 1000 - server, 3)
    return ms


def to_result(answer: dict[str, Any], job: EvalJob, applied: tuple[str, ...] = (),
              moved: dict[str, str] | None = None) -> EvalResult:
    """Returns the EvalResult for a server's answer, as a fresh process's would be built, with
    the server's layers."""
    outcome = sandbox.SandboxOutcome(
        returncode=answer.get("returncode"), signal=answer.get("signal"),
        timed_out=bool(answer.get("timed_out")), stdout=answer.get("stdout", ""),
        stderr=answer.get("stderr", ""), duration_s=float(answer.get("duration_s", 0.0)),
        timeout_s=job.timeout_s, stdout_dropped=answer.get("stdout_dropped", 0),
        stderr_dropped=answer.get("stderr_dropped", 0))
    raw = answer.get("result")
    result = None
    if isinstance(raw, dict):
        with contextlib.suppress(TypeError, ValueError):
            result = EvalResult.from_dict(raw)
    result = result or fresh.death_failure(outcome, job)  # the fresh path's wording
    if result.ok and "data_error" in answer:  # a produce server's answer: the candidate's data
        if answer.get("data") is None:
            result = EvalResult.failure(FailureKind.OUTPUT, str(answer.get("data_error")))
        else:
            result.artifacts["_data"] = str(answer["data"]).encode()
    if "duration_s" in answer:
        result.duration_s = outcome.duration_s
    return fresh.with_output(fresh.recorded(result, applied, moved or {}, outcome), outcome)
