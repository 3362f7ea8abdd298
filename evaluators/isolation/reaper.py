"""Process hygiene for sandboxed evaluations: become a child subreaper, and sweep what an
evaluation left behind (processes that carry its EVOFORGE_SANDBOX_RUN marker, zombies adopted
from a sandbox; inside a fork server, every descendant of the server and every file)."""

from __future__ import annotations

import collections
import contextlib
import ctypes
import os
import shutil
import signal
import threading
from collections.abc import Collection
from pathlib import Path
from typing import Any

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


def kill_descendants() -> int:
    """Kills and reaps every descendant of this subreaper (the fork server); returns how many."""
    killed = 0
    while True:
        kids = children()
        if not kids:
            break
        for child in kids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(child, signal.SIGKILL)
                killed += 1
        for child in kids:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(child, 0)
    while True:  # zombies already dead when listed
        try:
            if os.waitpid(-1, os.WNOHANG)[0] == 0:
                break
        except ChildProcessError:
            break
    return killed


def children() -> list[int]:
    """Returns the pids of this process's children (adopted orphans included)."""
    pid = os.getpid()
    fd = os.open(f"/proc/{pid}/task/{pid}/children", os.O_RDONLY)  # fewer syscalls than open()
    try:
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return [int(p) for p in b"".join(chunks).split()]


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


def remove_entries(folder: Path, keep: Collection[Path] = ()) -> None:
    """Removes every entry of folder but those in keep, even what a candidate locked (chmod 000)."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if Path(entry.path) in keep:
            continue
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path, onerror=_unlock)
        else:
            with contextlib.suppress(OSError):
                os.unlink(entry.path)


def _unlock(func: Any, path: str, _exc: Any) -> None:
    """Retries a removal after opening up the folder a candidate locked (chmod 000)."""
    try:
        os.chmod(os.path.dirname(path), 0o700)
        if os.path.isdir(path) and not os.path.islink(path):
            os.chmod(path, 0o700)
            shutil.rmtree(path, ignore_errors=True)
        else:
            func(path)
    except OSError:
        pass
