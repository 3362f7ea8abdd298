"""RL-on vs RL-off on quickstart: same budget, paired seeds, embedded SmolLM2 on CPU.

Each (seed, arm) is a real `evoforge run` (subprocess, own SQLite file); RL-on adds an [rl]
section (GRPO + LoRA every N evaluated children; the round's own children count in the budget).
Reports best score against LLM samples, and per writer (base model, training rounds, each
adapter) how many completions became valid children and their mean score. Prints a table and
writes benchmarks/out/rl_on_off.json.

    nice -n 10 .venv/bin/python benchmarks/rl_on_off.py [--seeds 0,1] [--iterations 24]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
RL_TOML = """[rl]
enabled = true
every_n_children = {every}
steps = {steps}
group_size = 4
max_completion_tokens = 192
learning_rate = {lr}
temperature = 0.9
"""


def run_arm(seed: int, iterations: int, rl: str | None, home: Path) -> dict:
    """Runs quickstart once; returns its summary, best-vs-samples curve and per-writer stats."""
    cmd = [sys.executable, "-m", "service.cli", "run", str(ROOT / "problems" / "quickstart"),
           "--seed", str(seed), "--iterations", str(iterations), "--json"]
    if rl is not None:
        (home / "rl.toml").write_text(rl)
        cmd += ["--config", str(home / "rl.toml")]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False,
                          env={**os.environ, "EVOFORGE_HOME": str(home)})
    if proc.returncode != 0:
        raise RuntimeError(f"seed {seed} failed ({proc.returncode}): {proc.stderr[-2000:]}")
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    summary["wall_s"] = time.monotonic() - started
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    with db.session() as s:
        rows = s.execute(select(LLMSampleRow.adapter, LLMSampleRow.outcome, ProgramRow.score)
                         .outerjoin(ProgramRow, ProgramRow.sample_id == LLMSampleRow.id)
                         .where(LLMSampleRow.run_id == summary["run_id"])
                         .order_by(LLMSampleRow.id)).all()
    db.close()
    best, curve, writers = summary.get("initial_score"), [], {}
    for adapter, outcome, score in rows:
        if score is not None and (best is None or score > best):
            best = score
        curve.append(best)
        w = writers.setdefault(_writer(adapter), {"samples": 0, "scores": []})
        w["samples"] += 1
        if score is not None:
            w["scores"].append(score)
    summary["curve"] = curve
    summary["writers"] = {k: {"samples": v["samples"], "scored": len(v["scores"]),
                              "mean_score": statistics.fmean(v["scores"]) if v["scores"] else None}
                          for k, v in writers.items()}
    return summary


def _writer(adapter: str | None) -> str:
    if adapter is None:
        return "base"
    return "training" if adapter.endswith("-training") else "adapter"


def main() -> None:
    """Runs both arms for every seed and prints the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--iterations", type=int, default=24)
    ap.add_argument("--every", type=int, default=8, help="rl.every_n_children")
    ap.add_argument("--steps", type=int, default=2, help="rl.steps per round")
    ap.add_argument("--lr", type=float, default=1e-4)
    args = ap.parse_args()
    rl = RL_TOML.format(every=args.every, steps=args.steps, lr=args.lr)
    results = []
    for seed in map(int, args.seeds.split(",")):
        for arm, extra in (("off", None), ("on", rl)):
            with tempfile.TemporaryDirectory(prefix=f"rl_{arm}_{seed}_") as home:
                r = run_arm(seed, args.iterations, extra, Path(home))
            results.append({"seed": seed, "arm": arm, **r})
            OUT.mkdir(parents=True, exist_ok=True)  # written after every run: partial results
            (OUT / "rl_on_off.json").write_text(json.dumps(results, indent=1))
    table = Table("seed", "arm", "best", "best @ half", "samples", "base: valid / mean",
                  "training: valid / mean", "adapter: valid / mean", "wall s",
                  title=f"quickstart, {args.iterations} iterations; RL every {args.every} "
                  f"children, {args.steps} GRPO steps x 4 completions, lr {args.lr}")
    for r in results:
        half = r["curve"][len(r["curve"]) // 2 - 1] if r["curve"] else None
        cells = []
        for w in ("base", "training", "adapter"):
            s = r["writers"].get(w)
            cells.append("-" if s is None else f"{s['scored']}/{s['samples']} / "
                         + ("-" if s["mean_score"] is None else f"{s['mean_score']:.3f}"))
        table.add_row(str(r["seed"]), r["arm"], f"{r['best_score']:.4f}",
                      "-" if half is None else f"{half:.4f}", str(len(r["curve"])), *cells,
                      f"{r['wall_s']:.0f}")
    Console(width=180).print(table)


if __name__ == "__main__":
    main()
