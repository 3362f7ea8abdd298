"""Child processes of a benchmark: own process group, stopped on timeout, interrupt or SIGTERM."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from typing import Any


def exit_on_sigterm() -> None:
    """Turns SIGTERM into SystemExit, so the started server and runs are stopped on the way out."""
    def _raise(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, _raise)


def run_group(cmd: list[str], timeout_s: float | None,
              **kwargs: Any) -> subprocess.CompletedProcess:
    """Runs cmd in its own process group; on timeout or interrupt stops the whole group.

    A run's own children (OpenEvolve's worker pool, evoforge's evaluations) must not outlive it.
    """
    proc = subprocess.Popen(cmd, start_new_session=True, **kwargs)
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except BaseException:
        for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 10)):
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            try:
                proc.wait(timeout=wait)
                break
            except subprocess.TimeoutExpired:
                continue
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)
