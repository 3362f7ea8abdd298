"""The fork server's side of one candidate's process: reading its pipes until it answers, exits or
runs out of time, telling the harness's result from what a candidate wrote, and killing and
reaping it and everything it left (evaluators/forkserver.py)."""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import time
from typing import Any

from evaluators.isolation import reaper, sandbox

RESULT_CAP = 16 * sandbox.MiB  # bytes of result JSON read from a child; the rest is dropped


def marks_of(raw: Any) -> list[float] | None:
    """Returns the child's three time marks, or None when they are not three numbers."""
    if isinstance(raw, list) and len(raw) == 3 and all(isinstance(t, int | float) for t in raw):
        return [float(t) for t in raw]
    return None


def pump(pid: int, deadline: float, sinks: dict[int, Any], result_fd: int) -> str:
    """Reads the child's pipes until it exits ("exited"), its result pipe ends with a result the
    harness wrote ("answered": the child is on its way out) or the deadline passes ("timeout")."""
    pidfd = os.pidfd_open(pid)
    open_fds = set(sinks)
    try:
        while True:
            wait = deadline - time.monotonic()
            if wait <= 0:
                return "timeout"
            ready, _, _ = select.select([pidfd, *open_fds], [], [], wait)
            for fd in ready:
                if fd != pidfd and not read_into(fd, sinks[fd]):
                    open_fds.discard(fd)
                    if fd == result_fd and harness_result(sinks[fd]) is not None:
                        return "answered"
            if pidfd in ready:
                return "exited"
    finally:
        os.close(pidfd)


def harness_result(raw: bytes) -> tuple[Any, list[float]] | None:
    """Returns (result, marks) of what the harness writes on the result pipe ({"result",
    "marks"}), or None for anything else (nothing, or what a candidate wrote there itself)."""
    if not raw:
        return None
    with contextlib.suppress(ValueError):
        parsed = json.loads(raw)
        if isinstance(parsed, dict) and "marks" in parsed:
            marks = marks_of(parsed["marks"])
            return None if marks is None else (parsed.get("result"), marks)
    return None


def read_into(fd: int, sink: Any) -> bool:
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


def drain(sinks: dict[int, Any]) -> None:
    """Reads the rest of the pipes: every writer is dead now, so each ends at once."""
    for fd, sink in sinks.items():
        os.set_blocking(fd, False)
        try:
            while read_into(fd, sink):
                pass
        except BlockingIOError:
            pass


def finish_child(pid: int) -> tuple[int | None, Any]:
    """Kills the child's group and every process left under this one; returns the child's status
    and resource usage (None, None when it was reaped elsewhere)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, signal.SIGKILL)
    status = usage = None
    with contextlib.suppress(ChildProcessError):
        _, status, usage = os.wait4(pid, 0)
    reaper.kill_descendants()
    return status, usage


def usage_of(usage: Any) -> dict[str, float]:
    """Returns the child's CPU ms and page faults (its process only), figures load moves little."""
    if usage is None:
        return {}
    return {"child_cpu": round((usage.ru_utime + usage.ru_stime) * 1000, 3),
            "child_faults": float(usage.ru_minflt)}
