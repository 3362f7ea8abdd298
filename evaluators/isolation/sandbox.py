"""Runs an untrusted command: own process group, rlimits, minimal env, capped output, time limit.

When the command ends (or its time is up) the whole process group is killed, so helpers it started
die with it. Isolation layers (bubblewrap, seccomp: evaluators/isolation/layers.py) are argv
wrappers (`wrap=`) that rewrite the command line; the limits (limits.py) stay in force underneath
them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import resource
import selectors
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from evaluators.isolation.limits import Capture, Limits

PACKAGE_DIR = Path(__file__).resolve().parents[1]  # evaluators/: what sandboxed children import
PRLIMIT = shutil.which("prlimit")  # util-linux; without it the limits are set by preexec_fn
_PRLIMIT_FLAGS = {resource.RLIMIT_CPU: "cpu", resource.RLIMIT_NOFILE: "nofile",
                  resource.RLIMIT_FSIZE: "fsize", resource.RLIMIT_CORE: "core",
                  resource.RLIMIT_AS: "as", resource.RLIMIT_NPROC: "nproc"}
BASE_ENV = {
    "LANG": "C.UTF-8", "PYTHONHASHSEED": "0", "PYTHONDONTWRITEBYTECODE": "1",
    "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
}
_SIGNAL_NOTES = {
    "SIGXCPU": "CPU time limit reached", "SIGXFSZ": "file size limit reached",
    "SIGSEGV": "segmentation fault", "SIGABRT": "aborted", "SIGBUS": "bus error",
    "SIGKILL": "possibly the kernel's out-of-memory killer",
}


Wrapper = Callable[[list[str], Limits], list[str]]
"""Rewrites a command line to add an isolation layer (e.g. `bwrap ... --`); applied in order."""


@dataclass
class SandboxOutcome:
    """How a sandboxed process ended and what it printed (capped)."""

    returncode: int | None
    signal: str | None
    timed_out: bool
    stdout: str
    stderr: str
    duration_s: float
    timeout_s: float
    stdout_dropped: int = 0
    stderr_dropped: int = 0
    pipes_held: bool = False  # a process outside the group kept the output open past the drain time
    pid: int | None = None    # the group leader's pid (= its process group and session id)

    def describe(self) -> str:
        """Returns how the process ended, in words ("killed by SIGSEGV (segmentation fault)")."""
        if self.timed_out:
            return f"exceeded {self.timeout_s:g} s wall clock; the process group was killed"
        if self.signal:
            note = _SIGNAL_NOTES.get(self.signal)
            return f"killed by {self.signal}" + (f" ({note})" if note else "")
        if self.returncode is None:
            return "did not end after it was killed (stuck in the kernel)"
        return "exited normally" if self.returncode == 0 else f"exited with code {self.returncode}"


def minimal_env(cwd: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    """Returns the sandbox environment: PATH, HOME/TMPDIR = cwd, the fixed BASE_ENV, then extra."""
    path = os.environ.get("PATH") or "/usr/local/bin:/usr/bin:/bin"
    env = {"PATH": path, "HOME": cwd, "TMPDIR": cwd}
    env.update(BASE_ENV)
    env.update(extra or {})
    return env


def spawn(argv: list[str], *, cwd: str, limits: Limits, env: dict[str, str] | None = None,
          wrap: Sequence[Wrapper] = (), pass_fds: Sequence[int] = (),
          user: tuple[int, int] | None = None, stdin: int | None = subprocess.DEVNULL,
          stderr: int | None = subprocess.PIPE, cgroup: Path | None = None) -> subprocess.Popen:
    """Returns argv started as an untrusted process group under limits (stdout is a pipe).

    The rlimits are set by exec'ing through `prlimit` (no Python runs between fork and exec, which
    keeps it safe in threads and lets Popen use vfork); preexec_fn is the fallback without it.
    pass_fds stay open in the child (e.g. the seccomp filter a bwrap wrapper reads). user =
    (uid, gid) drops to that unprivileged uid with no supplementary groups before the first exec,
    and adds RLIMIT_NPROC. cgroup: a cgroup folder the process is moved into before its command
    runs (a shell waits on stdin for the word that it has been moved, then execs the command);
    raises CgroupJoinFailed, with the process killed, when it cannot be moved.
    """
    for layer in wrap:
        argv = layer(list(argv), limits)
    rlimits = limits.rlimits(nproc=user is not None)
    preexec = None
    if PRLIMIT:
        argv = [PRLIMIT, *(f"--{_PRLIMIT_FLAGS[r]}={soft}:{hard}" for r, soft, hard in rlimits),
                "--", *argv]
    else:
        preexec = functools.partial(_apply, rlimits)  # only calls setrlimit between fork and exec
    if cgroup is not None:
        argv = [SH, "-c", _GATE_PIPE if stdin == subprocess.PIPE else _GATE_NULL, "evoforge-gate",
                *argv]
    ids = {"user": user[0], "group": user[1], "extra_groups": []} if user else {}
    proc = subprocess.Popen(
        argv, cwd=cwd, env=minimal_env(cwd, env), start_new_session=True, close_fds=True,
        pass_fds=tuple(pass_fds), stdin=stdin if cgroup is None else subprocess.PIPE,
        stdout=subprocess.PIPE, stderr=stderr, preexec_fn=preexec, **ids)  # noqa: PLW1509
    if cgroup is not None:
        _open_gate(proc, cgroup, keep_stdin=stdin == subprocess.PIPE)
    return proc


SH = "/bin/sh"


class CgroupJoinFailed(OSError):
    """The sandbox's first process could not be moved into its cgroup; it was killed unrun."""

# The gate: the first process of a cgroup'd sandbox waits for one line on stdin (written once the
# host has moved it into its cgroup), then execs the command; no Python runs before the move.
_GATE_PIPE = 'read -r go && [ "$go" = go ] && exec "$@"; exit 125'
_GATE_NULL = 'read -r go && [ "$go" = go ] && exec "$@" </dev/null; exit 125'


def _open_gate(proc: subprocess.Popen, cgroup: Path, *, keep_stdin: bool) -> None:
    """Moves proc into cgroup, then lets it run; kills it and raises OSError if it cannot move."""
    try:
        (Path(cgroup) / "cgroup.procs").write_text(str(proc.pid))
        proc.stdin.write(b"go\n")
        proc.stdin.flush()
    except OSError as exc:
        _kill_group(proc.pid)
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        proc.wait()
        raise CgroupJoinFailed(exc.errno, f"moving the sandbox into its pids cgroup {cgroup} "
                               f"failed: {exc.strerror or exc}") from None
    if not keep_stdin:
        proc.stdin.close()
        proc.stdin = None


def run(argv: list[str], *, cwd: str, limits: Limits, env: dict[str, str] | None = None,
        stdin: bytes | None = None, wrap: Sequence[Wrapper] = (),
        pass_fds: Sequence[int] = (), user: tuple[int, int] | None = None,
        cgroup: Path | None = None) -> SandboxOutcome:
    """Returns the outcome of running argv as an untrusted process group under limits; never hangs.

    See spawn() for how the limits, fds, user and cgroup are applied.
    """
    start = time.monotonic()
    proc = spawn(argv, cwd=cwd, limits=limits, env=env, wrap=wrap, pass_fds=pass_fds, user=user,
                 stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                 cgroup=cgroup)
    with _LIVE_LOCK:
        _LIVE.add(proc.pid)
    try:
        out, err = Capture(limits.output_bytes), Capture(limits.output_bytes)
        timed_out, held = _pump(proc, limits, start, stdin, out, err)
        returncode = _reap(proc)
    finally:
        with _LIVE_LOCK:
            _LIVE.discard(proc.pid)
    sig = _signal_name(-returncode) if returncode is not None and returncode < 0 else None
    return SandboxOutcome(returncode=returncode, signal=sig, timed_out=timed_out,
                          stdout=out.text(), stderr=err.text(), duration_s=time.monotonic() - start,
                          timeout_s=limits.timeout_s, stdout_dropped=out.dropped,
                          stderr_dropped=err.dropped, pipes_held=held, pid=proc.pid)


_LIVE: set[int] = set()  # process groups of sandboxed runs in progress in this process
_LIVE_LOCK = threading.Lock()


def track(pgid: int) -> None:
    """Adds a running sandbox's process group to those kill_all() kills."""
    with _LIVE_LOCK:
        _LIVE.add(pgid)


def untrack(pgid: int) -> None:
    """Removes a process group added by track()."""
    with _LIVE_LOCK:
        _LIVE.discard(pgid)


def kill_all() -> int:
    """Kills the process group of every sandboxed run in progress; returns how many."""
    with _LIVE_LOCK:
        groups = list(_LIVE)
    for pgid in groups:
        _kill_group(pgid)
    return len(groups)


def _signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _apply(rlimits: list[tuple[int, int, int]]) -> None:
    for res, soft, hard in rlimits:
        resource.setrlimit(res, (soft, hard))


def _pump(proc: subprocess.Popen, limits: Limits, start: float, stdin: bytes | None,
          out: Capture, err: Capture) -> tuple[bool, bool]:
    """Returns (timed_out, pipes_held) once the group is killed and the pipes closed or drained."""
    sel = selectors.DefaultSelector()
    for pipe, cap in ((proc.stdout, out), (proc.stderr, err)):
        os.set_blocking(pipe.fileno(), False)
        sel.register(pipe, selectors.EVENT_READ, cap)
    pending = memoryview(stdin or b"")
    if stdin is not None:
        os.set_blocking(proc.stdin.fileno(), False)
        sel.register(proc.stdin, selectors.EVENT_WRITE, None)
    pidfd = _pidfd(proc.pid)
    if pidfd is not None:
        sel.register(pidfd, selectors.EVENT_READ, "exit")
    deadline, drain_until, timed_out = start + limits.timeout_s, None, False
    try:
        while True:
            now = time.monotonic()
            exited = drain_until is not None or _exited(proc.pid)
            if drain_until is None and (exited or now >= deadline):
                timed_out = not exited
                _kill_group(proc.pid)
                drain_until = now + limits.drain_s
            pipes = [k for k in sel.get_map().values() if k.data != "exit"]
            if drain_until is not None and (not pipes or now >= drain_until):
                return timed_out, bool(pipes)
            wait = (drain_until or deadline) - now
            for key, _ in sel.select(wait if pidfd is not None else min(wait, 0.02)):
                pending = _service(sel, key, pending)
    finally:
        for key in list(sel.get_map().values()):
            sel.unregister(key.fileobj)
        sel.close()
        for pipe in (proc.stdin, proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        if pidfd is not None:
            os.close(pidfd)


def _service(sel: selectors.BaseSelector, key: selectors.SelectorKey,
             pending: memoryview) -> memoryview:
    """Returns the stdin bytes still to send after handling one ready pipe."""
    if key.data == "exit":
        sel.unregister(key.fileobj)
        return pending
    if key.data is None:  # stdin
        try:
            pending = pending[os.write(key.fileobj.fileno(), pending):]
        except BlockingIOError:
            return pending
        except OSError:  # the process closed its stdin
            pending = pending[:0]
        if not pending:
            sel.unregister(key.fileobj)
            key.fileobj.close()
        return pending
    try:
        data = os.read(key.fileobj.fileno(), 65536)
    except BlockingIOError:
        return pending
    if data:
        key.data.add(data)
    else:
        sel.unregister(key.fileobj)
    return pending


def _pidfd(pid: int) -> int | None:
    try:
        return os.pidfd_open(pid)
    except (AttributeError, OSError):
        return None


def _exited(pid: int) -> bool:
    """Returns True when the child has ended, without reaping it (its group id stays reserved)."""
    try:
        return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
    except ChildProcessError:
        return True


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _reap(proc: subprocess.Popen) -> int | None:
    """Returns the exit status of the group leader, killing the group again if it lingers."""
    for _ in range(2):
        try:
            return proc.wait(timeout=2.0)
        except subprocess.TimeoutExpired:
            _kill_group(proc.pid)
    return None
