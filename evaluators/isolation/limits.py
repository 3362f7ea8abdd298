"""What a sandboxed process may use (rlimits, wall clock) and how much of its output is kept.

Imported inside fork servers, so it imports nothing that registers fork handlers (threading,
random): each such handler runs again in every candidate's process.
"""

from __future__ import annotations

import math
import resource
from dataclasses import dataclass

MiB = 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Resource limits for one sandboxed process and every process it starts."""

    timeout_s: float = 30.0           # wall clock; then the whole process group is killed
    memory_mb: int | None = 1024      # RLIMIT_AS (address space); None: no limit
    open_files: int = 256             # RLIMIT_NOFILE
    file_size_mb: int = 64            # RLIMIT_FSIZE: largest file the process may write
    output_bytes: int = 64 * 1024     # bytes kept per stream (head + tail); the rest is discarded
    drain_s: float = 1.0              # how long to wait for the pipes once the process has ended
    processes: int = 128              # processes + threads: pids.max, RLIMIT_NPROC (isolation/pids)

    def cpu_seconds(self) -> int:
        """Returns the RLIMIT_CPU soft limit: the wall-clock limit rounded up, plus one second."""
        return math.ceil(self.timeout_s) + 1

    def rlimits(self, *, nproc: bool = False) -> list[tuple[int, int, int]]:
        """Returns (resource, soft, hard) triples for the child, capped at the current hard ones.

        nproc adds RLIMIT_NPROC: only meaningful under a dedicated uid (it counts per user).
        """
        cpu = self.cpu_seconds()
        wanted = [(resource.RLIMIT_CPU, cpu, cpu + 1),
                  (resource.RLIMIT_NOFILE, self.open_files, self.open_files),
                  (resource.RLIMIT_FSIZE, self.file_size_mb * MiB, self.file_size_mb * MiB),
                  (resource.RLIMIT_CORE, 0, 0)]
        if self.memory_mb is not None:
            wanted.append((resource.RLIMIT_AS, self.memory_mb * MiB, self.memory_mb * MiB))
        if nproc:
            wanted.append((resource.RLIMIT_NPROC, self.processes, self.processes))
        out = []
        for res, soft, hard in wanted:
            cur_hard = resource.getrlimit(res)[1]
            if cur_hard != resource.RLIM_INFINITY:
                soft, hard = min(soft, cur_hard), min(hard, cur_hard)
            out.append((res, soft, hard))
        return out


def clip(text: str, limit: int, *, head: bool = True) -> str:
    """Returns text cut to about limit characters: head + tail (or the tail only) with a marker."""
    if len(text) <= limit:
        return text
    if not head:
        return f"[... {len(text) - limit} characters dropped ...]\n" + text[-limit:]
    half = limit // 2
    return text[:half] + f"\n[... {len(text) - 2 * half} characters dropped ...]\n" + text[-half:]


class Capture:
    """Keeps the first and last `cap // 2` bytes of a stream and counts what it drops."""

    def __init__(self, cap: int) -> None:
        self.half = max(cap // 2, 1)
        self.head = bytearray()
        self.tail = bytearray()
        self.dropped = 0

    def add(self, data: bytes) -> None:
        """Keeps data at the head while there is room, else in the tail (dropping the oldest)."""
        room = self.half - len(self.head)
        if room > 0:
            self.head += data[:room]
            data = data[room:]
        self.tail += data
        extra = len(self.tail) - self.half
        if extra > 0:
            del self.tail[:extra]
            self.dropped += extra

    def raw(self) -> bytes:
        """Returns head + a marker saying how much was dropped + tail."""
        marker = f"\n[... {self.dropped} bytes dropped ...]\n".encode() if self.dropped else b""
        return bytes(self.head + marker + self.tail)

    def text(self) -> str:
        """Returns raw(), decoded as UTF-8."""
        return self.raw().decode("utf-8", errors="replace")
