"""Quickstart over several seeds with the embedded model: best score vs iterations, per seed.

Each seed is a real `evoforge run` (subprocess, own SQLite file); the curve of best score against
iterations is read back from the database. Prints a table, writes JSON and (when matplotlib is
installed) a PNG plot under benchmarks/out/.

    .venv/bin/python benchmarks/quickstart_seeds.py [--seeds 0,1,2,3,4] [--iterations 40]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from service.db import Database
from service.db.models import ProgramRow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"


def run_seed(problem: Path, seed: int, iterations: int, home: Path) -> dict:
    """Runs evoforge once; returns its JSON summary plus the best-so-far curve."""
    started = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-m", "service.cli", "run", str(problem), "--seed", str(seed),
         "--iterations", str(iterations), "--json"],
        capture_output=True, text=True, env={**os.environ, "EVOFORGE_HOME": str(home)},
        check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"seed {seed} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["wall_s"] = time.monotonic() - started
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        rows = s.execute(select(ProgramRow.iteration, ProgramRow.score).where(
            ProgramRow.run_id == summary["run_id"], ProgramRow.status == "ok",
            ProgramRow.kind != "migrant").order_by(ProgramRow.iteration)).all()
    db.close()
    best, curve = None, []
    by_iter = {}
    for it, score in rows:
        by_iter[it] = max(score, by_iter.get(it, score))
    for it in range(summary["iterations"] + 1):
        if it in by_iter and (best is None or by_iter[it] > best):
            best = by_iter[it]
        curve.append(best)
    summary["curve"] = curve
    return summary


def plot(results: list[dict], path: Path) -> bool:
    """Draws best score vs iterations for every seed; returns False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.step(range(len(r["curve"])), r["curve"], where="post", label=f"seed {r['seed']}")
    ax.set_xlabel("iteration (LLM completions)")
    ax.set_ylabel("best score so far")
    ax.set_title("quickstart with the embedded SmolLM2-135M")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def main() -> None:
    """Runs every seed and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", type=Path, default=ROOT / "problems" / "quickstart")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--iterations", type=int, default=40)
    args = ap.parse_args()
    console = Console(width=150)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            console.print(f"seed {seed}: {args.iterations} iterations ...")
            r = run_seed(args.problem, seed, args.iterations, Path(tmp))
            r["seed"] = seed
            results.append(r)
    table = Table(title=f"{args.problem.name}: best score vs iterations, embedded model")
    for col in ("seed", "initial", "best", "gain", "iter 10", "iter 20", "last", "failed",
                "LLM calls", "tokens", "wall s"):
        table.add_column(col, justify="right")
    for r in results:
        c = r["curve"]
        table.add_row(str(r["seed"]), f"{r['initial_score']:.4f}", f"{r['best_score']:.4f}",
                      f"{r['best_score'] - r['initial_score']:+.4f}",
                      f"{c[min(10, len(c) - 1)]:.4f}", f"{c[min(20, len(c) - 1)]:.4f}",
                      str(r["iterations"]), f"{r['failed']}/{r['evaluations']}",
                      str(r["llm_calls"]), str(r["tokens"]), f"{r['wall_s']:.0f}")
    console.print(table)
    improved = sum(r["best_score"] > r["initial_score"] for r in results)
    console.print(f"improved over the initial program in {improved} of {len(results)} seeds")
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "quickstart_seeds.json").write_text(json.dumps(results, indent=2))
    if plot(results, OUT / "quickstart_seeds.png"):
        console.print(f"plot: {OUT / 'quickstart_seeds.png'}")


if __name__ == "__main__":
    main()
