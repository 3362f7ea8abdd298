"""The fork server's zygote: a quiet copy of the server that forks and reaps the candidates.

A forked child shares its parent's memory copy-on-write, so every page either of them writes while
both live is copied. The fork server writes to its memory all the time: it reads each request,
pumps the candidate's output and writes the answer while the candidate runs, about 340 page copies
per candidate when the candidate is its own child. The zygote is forked from the server once, after
the evaluator is imported and the heap frozen, and then only forks and reaps: the candidates share
pages that nobody else writes.

A candidate is the zygote's child, so the zygote reaps it when the server asks (after the server
saw it end and killed its process group) and hands back how it ended and what it used. Processes a
candidate leaves behind are orphans of the server (a child subreaper), which kills them as before.
The protocol is one message each way on a Unix socket: b"f" gets a spare's pid with the server's
ends of its pipes, b"r" + pid gets "status cpu_seconds faults" (or "-" when there is no such child).
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
from collections.abc import Callable
from typing import NamedTuple

SpareMain = Callable[[tuple[int, int, int, int]], None]  # runs in the spare; never returns


class Ended(NamedTuple):
    """How a reaped candidate's process ended and what it used (its own process only)."""

    status: int
    cpu_s: float
    faults: int


class Zygote:
    """The server's side of its zygote process."""

    def __init__(self, spare_main: SpareMain) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        pid = os.fork()
        if pid == 0:
            ours.close()
            _serve(theirs, spare_main)
        theirs.close()
        self.pid, self.sock = pid, ours

    def fileno(self) -> int:
        """Returns the socket's descriptor: readable once a spare asked for is ready."""
        return self.sock.fileno()

    def request(self) -> None:
        """Asks for a spare; collect() takes it (meanwhile this process goes on)."""
        self.sock.sendall(b"f")

    def collect(self) -> tuple[int, list[int]]:
        """Returns the spare asked for: its pid and this side of its pipes (where its job goes,
        then its stdout, stderr and result); raises OSError if the zygote is gone."""
        message, fds, _, _ = socket.recv_fds(self.sock, 32, 4)
        if not message.isdigit() or len(fds) != 4:
            for fd in fds:
                os.close(fd)
            raise OSError("the zygote that forks the candidates' processes is gone")
        return int(message), fds

    def reap(self, pid: int) -> Ended | None:
        """Waits for the zygote's child pid (killed or exited) and returns how it ended; None when
        it was reaped before or the zygote is gone."""
        try:
            self.sock.sendall(b"r%d" % pid)
            fields = self.sock.recv(64).split()
        except OSError:
            return None
        if len(fields) != 3:
            return None
        return Ended(int(fields[0]), float(fields[1]), int(fields[2]))

    def close(self) -> None:
        """Kills the zygote and reaps it."""
        self.sock.close()
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)


def _serve(sock: socket.socket, spare_main: SpareMain) -> None:
    """The zygote's loop: a spare per b"f", a reaped child per b"r" + pid, until the server's end
    closes."""
    try:
        while request := sock.recv(32):
            if request[:1] == b"r":
                sock.sendall(_reaped(int(request[1:])))
                continue
            job_r, job_w = os.pipe()
            out_r, out_w = os.pipe()
            err_r, err_w = os.pipe()
            res_r, res_w = os.pipe()
            spare = os.fork()
            if spare == 0:
                spare_main((job_r, out_w, err_w, res_w))
            for fd in (job_r, out_w, err_w, res_w):
                os.close(fd)
            theirs = [job_w, out_r, err_r, res_r]
            try:
                socket.send_fds(sock, [str(spare).encode()], theirs)
            finally:
                for fd in theirs:
                    os.close(fd)
    except OSError:
        pass
    finally:
        os._exit(0)


def _reaped(pid: int) -> bytes:
    """Returns "status cpu_seconds faults" of the child pid once it has ended, or b"-"."""
    try:
        _, status, usage = os.wait4(pid, 0)
    except ChildProcessError:
        return b"-"
    return b"%d %.6f %d" % (status, usage.ru_utime + usage.ru_stime, usage.ru_minflt)
