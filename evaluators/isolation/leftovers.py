"""What a candidate leaves inside a fork server: its descendants (killed and reaped) and its files.

Imported inside fork servers, so it imports nothing that registers fork handlers (threading,
random): each such handler runs again in every candidate's process.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Collection
from typing import Any


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
    return [int(p) for p in _read(f"/proc/{pid}/task/{pid}/children").split()]


def _read(path: str) -> bytes:
    """Returns a /proc file's bytes, with fewer syscalls and objects than open() or Path."""
    fd = os.open(path, os.O_RDONLY)
    try:
        chunks = [os.read(fd, 1 << 16)]
        while chunks[-1]:
            chunks.append(os.read(fd, 1 << 16))
    finally:
        os.close(fd)
    return b"".join(chunks)


def only_child_alone(pid: int) -> bool:
    """Returns True when pid is this process's only child and has no child of its own (in any of
    its threads): then killing pid leaves nothing running."""
    if children() != [pid]:
        return False
    try:
        return not any(_read(f"/proc/{pid}/task/{task}/children").strip()
                       for task in os.listdir(f"/proc/{pid}/task"))
    except OSError:  # gone meanwhile: reaped elsewhere, nothing to say
        return False


def remove_entries(folder: str, keep: Collection[str] = ()) -> None:
    """Removes every entry of folder but the paths in keep, even what a candidate locked (chmod
    000). Paths as strings: no Path object is made per entry."""
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return
    for entry in entries:
        if entry.path in keep:
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
