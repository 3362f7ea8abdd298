"""Watching evaluations from outside: the most tasks one had alive at once, exactly.

`observed(job)` runs tests/evaluators/count_driver.py (one evaluation) inside a new pids cgroup
made for watching; the pids controller counts every task of a subtree, so the watcher's pids.peak
minus what the driver itself held is the evaluation's own peak of processes and threads (the
layer's per-evaluation cgroups nest inside the watcher). `user=` runs the driver as that user
through runuser. The watcher caps the whole driver at CAP tasks, so a layer that fails to bound a
fork bomb fails the test instead of exhausting the machine's pids. Needs root and a pids cgroup
hierarchy (`watcher_problem()` says why not).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from evaluators.isolation import cgroups
from evaluators.jobs import EvalJob, EvalResult

REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).resolve().parent / "count_driver.py"
RUNUSER = shutil.which("runuser")
_GATE = 'echo $$ > "$0" && exec "$@"'  # joins the watcher before the driver starts
CAP = 1024  # tasks of the whole driver: a safety net far above any evaluation's limit


@dataclass
class Observed:
    """An evaluation watched from outside."""

    result: EvalResult
    peak: int        # most of the evaluation's tasks (processes + threads) alive at once
    left: list[int]  # pids still in the watcher after the driver exited (should be none)
    stderr: str


def watcher_problem() -> str | None:
    """Returns why evaluations cannot be watched here, or None."""
    if os.geteuid() != 0:
        return "watching needs root (it makes a pids cgroup)"
    where, why = cgroups.find()
    if where is None:
        return f"no pids cgroup hierarchy: {why}"
    with watcher() as group:
        if group.peak() is None:
            return "this kernel's pids controller has no pids.peak (Linux 6.1 added it)"
    return None


@contextlib.contextmanager
def watcher(cap: int = CAP) -> Iterator[cgroups.Cgroup]:
    """Yields a new pids cgroup beside this process's, at most cap tasks; kills what is left and
    removes it afterwards."""
    where, why = cgroups.find()
    assert where is not None, why
    path = where.parent / f"test-watcher-{uuid.uuid4().hex[:8]}"
    path.mkdir()
    (path / "pids.max").write_text(str(cap))
    group = cgroups.Cgroup(path, where.version)
    try:
        yield group
    finally:
        group.remove()


def observed(job: EvalJob, *, user: str | None = None, env: dict[str, str] | None = None,
             python: str = sys.executable, pythonpath: str = str(REPO),
             timeout: float = 300, cap: int = CAP, wrap: tuple[str, ...] = ()) -> Observed:
    """Returns the result of job run by the driver (as user, if given; under the wrap command,
    e.g. tests/evaluators/container_like.py) and its peak task count."""
    with watcher(cap) as group:
        base = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "PYTHONPATH": pythonpath,
                "PYTHONDONTWRITEBYTECODE": "1", "LANG": "C.UTF-8"}
        who = [RUNUSER, "-u", user, "--", "env", *(f"{k}={v}" for k, v in
                                                   {**base, **(env or {})}.items())] if user else []
        argv = ["/bin/sh", "-c", _GATE, str(group.path / "cgroup.procs"), *who, *wrap, python,
                str(DRIVER), json.dumps(job.to_dict()), str(group.path)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False,
                              cwd=REPO, env={**os.environ, **base, **(env or {})})
        left = group.members()
        lines = [ln for ln in done.stdout.splitlines() if ln.startswith("{")]
        assert lines, f"no result from the driver (exit {done.returncode}): {done.stderr[-3000:]}"
        answer = json.loads(lines[-1])
        peak = (group.peak() or 0) - int(answer["before"])
    return Observed(EvalResult.from_dict(answer["result"]), peak, left, done.stderr)
