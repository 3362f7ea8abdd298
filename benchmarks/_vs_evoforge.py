"""evoforge side of the benchmarks: one `evoforge run` on an OpenAI-compatible URL, read back.

The run is a real subprocess (`python -m service.cli.app run ... --llm openai --json`) with its own
SQLite file; its curve (best score after each iteration), evaluation times and best program are
read back from that database.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from datetime import UTC, datetime
from pathlib import Path
from statistics import fmean
from typing import Any

from _vs_common import EVOFORGE, ROOT, best_curve, run_group, time_curve
from sqlalchemy import select

from service.db import Database
from service.db.models import EvaluationRow, ProgramRow, RunRow


def run_evoforge(problem: Path, url: str, model: str, iterations: int, seed: int, workers: int,
                 home: Path, maximize: bool, llm: dict[str, Any] | None = None,
                 timeout_s: float = 3600) -> dict[str, Any]:
    """Runs evoforge once with the openai backend; returns its summary, curves and timings.

    llm holds extra [llm] settings for the run (e.g. context_window, concurrency, timeout_s).
    """
    home.mkdir(parents=True, exist_ok=True)
    cmd = [EVOFORGE, "run", str(problem), "--llm", "openai",
           "--llm-url", url, "--model", model, "--iterations", str(iterations), "--seed", str(seed),
           "--workers", str(workers), "--json"]
    if llm:
        cfg = home / "run.toml"
        cfg.write_text("[llm]\n" + "".join(f"{k} = {json.dumps(v)}\n" for k, v in llm.items()))
        cmd += ["--config", str(cfg)]
    started, t0 = time.monotonic(), time.time()
    proc = run_group(cmd, timeout_s, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                     cwd=ROOT, env={**os.environ, "EVOFORGE_HOME": str(home)})
    wall = time.monotonic() - started
    (home / "stderr.log").write_text(proc.stderr)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"evoforge run on {problem.name} seed {seed} failed "
                           f"({proc.returncode}); log {home / 'stderr.log'}: {proc.stderr[-1500:]}")
    summary = json.loads(lines[-1])
    return summary | {"wall_s": wall} | _read_back(home / "evoforge.db", summary["run_id"],
                                                   summary["iterations"], maximize, t0)


def _read_back(db_file: Path, run_id: int, iterations: int, maximize: bool,
               t0: float) -> dict[str, Any]:
    """Returns curve, time curve (seconds since t0, the launch), evaluation timings and best code."""
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.session() as s:
            run = s.get(RunRow, run_id)
            progs = s.execute(select(ProgramRow.iteration, ProgramRow.score, ProgramRow.status,
                                     ProgramRow.evaluated_at).where(
                ProgramRow.run_id == run_id, ProgramRow.kind != "migrant")).all()
            durations = s.scalars(select(EvaluationRow.duration_s).where(
                EvaluationRow.run_id == run_id, EvaluationRow.status == "ok",
                EvaluationRow.duration_s.is_not(None))).all()
            best = s.get(ProgramRow, run.best_program_id) if run.best_program_id else None
            ok = [p for p in progs if p.status == "ok"]
            iters = max([p.iteration for p in progs] + [iterations])
            return {
                "curve": best_curve([(p.iteration, p.score) for p in ok], iters, maximize),
                "time_curve": time_curve([(_epoch(p.evaluated_at) - t0, p.score) for p in ok
                                          if p.evaluated_at], maximize),
                "eval_s_mean": fmean(durations) if durations else None,
                "evals_timed": len(durations),
                "programs": len(progs), "scored": len(ok),
                "best_code": best.code if best else None,
            }
    finally:
        db.close()


def _epoch(when: datetime) -> float:
    """Returns a stored timestamp (naive values are UTC) as seconds since the epoch."""
    return (when if when.tzinfo else when.replace(tzinfo=UTC)).timestamp()
