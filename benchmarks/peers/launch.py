"""Runs the peer-side modules in OpenEvolve's venv and reads back the JSON they print.

They run as `python -m benchmarks.peers.<name>` with the peer's python and the repository root as
the working directory, so that `benchmarks` is importable there and nothing else of ours is.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from benchmarks.harness.paths import ROOT
from benchmarks.harness.venvs import OPENEVOLVE


def _json_lines(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(ln) for ln in stdout.splitlines() if ln.startswith("{")]


def controller_timings(sizes: list[int], iterations: int, budget_s: float,
                       log: Callable[[str], object] = print) -> list[dict[str, Any]]:
    """Returns OpenEvolve's bookkeeping costs per size (the venv is created when missing)."""
    cmd = [str(OPENEVOLVE.ensure(log)), "-m", "benchmarks.peers.openevolve_controller",
           "--sizes", ",".join(map(str, sizes)), "--iterations", str(iterations),
           "--budget-s", str(budget_s)]
    proc = subprocess.run(cmd, check=False, capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"the peer failed ({' '.join(cmd)}):\n{proc.stderr[-3000:]}")
    return _json_lines(proc.stdout)


def eval_timings(evaluator: Path, code: str, n: int,
                 timeout_s: float | None = None) -> dict[str, Any] | None:
    """Returns {"median_ms", "p10_ms", "n"} of OpenEvolve's evaluation path on code, or None
    when its venv is missing (nothing is installed here) or the peer failed (said on stderr)."""
    python = OPENEVOLVE.existing()
    if python is None:
        return None
    with tempfile.NamedTemporaryFile("w", suffix=".py", delete=False) as f:
        f.write(code)
    try:
        done = subprocess.run([str(python), "-m", "benchmarks.peers.openevolve_eval",
                               str(evaluator), f.name, str(n)], capture_output=True, text=True,
                              check=False, cwd=ROOT, timeout=timeout_s)
    finally:
        os.unlink(f.name)
    if done.returncode != 0 or not _json_lines(done.stdout):
        print(f"peer failed: {done.stderr.strip()[-500:]}", file=sys.stderr)
        return None
    return _json_lines(done.stdout)[-1]
