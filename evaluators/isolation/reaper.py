"""Process hygiene for sandboxed evaluations, host side: become a child subreaper, and sweep what an
evaluation left behind (processes that carry its EVOFORGE_SANDBOX_RUN marker, zombies adopted
from a sandbox). Inside a fork server the sweep of descendants and files is leftovers.py's."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import signal
import threading

RUN_VAR = "EVOFORGE_SANDBOX_RUN"  # marks every process of one evaluation, for the sweep

_SUBREAPER: bool | None = None
_SUBREAPER_PID: int | None = None
_SUBREAPER_LOCK = threading.Lock()


def become_subreaper() -> bool:
    """Returns True once this process is a child subreaper (set once, guarded)."""
    global _SUBREAPER, _SUBREAPER_PID
    with _SUBREAPER_LOCK:
        if _SUBREAPER is None or os.getpid() != _SUBREAPER_PID:  # fork does not inherit it
            try:
                libc = ctypes.CDLL(None, use_errno=True)
                _SUBREAPER = libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
            except (OSError, AttributeError):
                _SUBREAPER = False
            _SUBREAPER_PID = os.getpid()
        return _SUBREAPER


_GROUPS: collections.deque[int] = collections.deque(maxlen=256)  # recent sandbox groups


def sweep(run_id: str, group: int | None = None) -> list[int]:
    """Returns the pids of processes marked with run_id that were still alive, now killed.

    Also reaps zombies this process adopted as subreaper from a sandbox: those from a sandbox's
    pid namespace, and those left in a recent sandbox's process group (never a group leader, so
    never a child another thread is about to wait for).
    """
    if group is not None:
        _GROUPS.append(group)
    marker = f"{RUN_VAR}={run_id}".encode() + b"\0"
    me, killed = os.getpid(), []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit() or int(entry.name) == me:
            continue
        pid = int(entry.name)
        stat = _stat(pid)
        if stat is None:
            continue
        if stat[0] == "Z":
            if stat[1] == me and _adopted_from_sandbox(pid, stat[2]):
                _reap(pid)
        elif marker in _environ(pid):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
    for pid in killed:  # reap the ones that are our children (adopted as subreaper)
        stat = _stat(pid)
        if stat is not None and stat[1] == me:
            _reap(pid)
    return killed


def _stat(pid: int) -> tuple[str, int, int] | None:
    """Returns (state, parent pid, process group) of pid, or None when it is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
        return fields[0].decode(), int(fields[1]), int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _environ(pid: int) -> bytes:
    try:
        with open(f"/proc/{pid}/environ", "rb") as f:
            return f.read() + b"\0"
    except OSError:
        return b""


def _adopted_from_sandbox(pid: int, pgid: int) -> bool:
    """Returns True for a zombie from a sandbox's pid namespace or left in a sandbox's group."""
    if pgid != pid and pgid in _GROUPS:
        return True
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            nspid = next((ln for ln in f if ln.startswith(b"NSpid:")), b"")
    except OSError:
        return False
    return len(nspid.split()) > 2  # NSpid: <pid here> <pid in the sandbox's namespace>


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, 0)
