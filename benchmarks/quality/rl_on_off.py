"""RL-on vs RL-off on quickstart: same budget, paired seeds, embedded SmolLM2 on CPU.

Each (seed, arm) is a real `evoforge run` (subprocess, own SQLite file); RL-on adds an [rl]
section (GRPO + LoRA every N evaluated children; the round's own children count in the budget).
Reports best score against LLM samples, and per writer (base model, training rounds, published
adapters) how many completions became valid children and their mean score; the adapters' children
are also set against the RL-off run's children at the same sample positions. Resumable: results
are appended to benchmarks/out/rl_on_off.json after every run, and a (seed, arm) already there
with the same settings is not run again. Prints a table and draws docs/rl_on_off.png.

    nice -n 10 .venv/bin/python -m benchmarks.quality.rl_on_off [--seeds 0,1,2,3,4] \
        [--iterations 30] [--every 8] [--steps 1] [--lr 3e-4] [--threads 1]
    .venv/bin/python -m benchmarks.quality.rl_on_off --report   # table and plot from the JSON only
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from sqlalchemy import select

from benchmarks.harness.curves import running_best
from benchmarks.harness.evoforge import run_cli
from benchmarks.harness.paths import OUT, PROBLEMS, ROOT
from benchmarks.harness.store import read_json, write_json
from benchmarks.quality.rl_on_off_report import ARMS, markdown, plot, report
from service.db.models import AdapterRow

PLOT = ROOT / "docs" / "rl_on_off.png"
RL_TOML = """[rl]
enabled = true
every_n_children = {every}
steps = {steps}
group_size = 4
max_completion_tokens = 192
learning_rate = {lr}
temperature = 0.9
threads = {threads}
"""


def run_arm(seed: int, iterations: int, rl: str | None, home: Path,
            timeout_s: float | None = None) -> dict[str, Any]:
    """Runs quickstart once; returns its summary, best-vs-samples curve and per-writer stats."""
    run = run_cli(PROBLEMS / "quickstart", home, seed=seed, iterations=iterations, config=rl,
                  timeout_s=timeout_s)
    summary = run.summary | {"wall_s": run.wall_s}
    with run.session() as s:
        adapters = s.execute(select(AdapterRow.name, AdapterRow.steps, AdapterRow.reward_stats)
                             .where(AdapterRow.run_id == run.run_id)
                             .order_by(AdapterRow.version)).all()
    rows = [(x.adapter, x.outcome, x.score) for x in run.samples()]
    summary.update(trace(rows, summary.get("initial_score"), run.maximize()))
    summary["adapters"] = [{"name": n, "steps": st, "reward_stats": rs} for n, st, rs in adapters]
    return summary


def trace(rows: list[Any], initial: float | None, maximize: bool) -> dict[str, Any]:
    """Returns the best-so-far curve, each sample's writer and score, and per-writer stats."""
    seq, scores, writers = [], [], {}
    for adapter, _outcome, score in rows:
        seq.append(_writer(adapter))
        scores.append(score)
        w = writers.setdefault(seq[-1], {"samples": 0, "scores": []})
        w["samples"] += 1
        if score is not None:
            w["scores"].append(score)
    return {"curve": running_best(scores, maximize, start=initial), "writer_seq": seq,
            "sample_scores": scores,
            "writers": {k: {"samples": v["samples"], "scored": len(v["scores"]),
                            "mean_score": statistics.fmean(v["scores"]) if v["scores"] else None}
                        for k, v in writers.items()}}


def _writer(adapter: str | None) -> str:
    if adapter is None:
        return "base"
    return "training" if adapter.endswith("-training") else "adapter"


def settings_of(args: argparse.Namespace) -> dict[str, Any]:
    """Returns the settings a result must match to be reused on resume."""
    return {"iterations": args.iterations, "every": args.every, "steps": args.steps,
            "lr": args.lr, "threads": args.threads}


def load_results(path: Path) -> list[dict[str, Any]]:
    """Returns the results already in path ([] when there is none)."""
    return read_json(path, [])


def run_missing(args: argparse.Namespace, settings: dict[str, Any],
                results: list[dict[str, Any]]) -> None:
    """Runs both arms of every seed not in results yet; appends each and saves the JSON."""
    rl = RL_TOML.format(**{k: v for k, v in settings.items() if k != "iterations"})
    for seed in map(int, args.seeds.split(",")):
        for arm in ARMS:
            if any(r["seed"] == seed and r["arm"] == arm for r in results):
                print(f"seed {seed} {arm}: already in {args.json}, skipped", flush=True)
                continue
            with tempfile.TemporaryDirectory(prefix=f"rl_{arm}_{seed}_") as home:
                r = run_arm(seed, args.iterations, rl if arm == "on" else None, Path(home),
                            args.run_timeout_s)
            results.append({"seed": seed, "arm": arm, "settings": settings,
                            "load_avg": os.getloadavg(), **r})
            write_json(args.json, results)  # after every run
            print(f"seed {seed} {arm}: best {r['best_score']:.4f}, {r['wall_s']:.0f} s, "
                  f"load {os.getloadavg()[0]:.1f}", flush=True)


def main() -> None:
    """Runs both arms for every seed not yet in the JSON, then prints and plots the comparison."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--iterations", type=int, default=30)
    ap.add_argument("--every", type=int, default=8, help="rl.every_n_children")
    ap.add_argument("--steps", type=int, default=1, help="rl.steps per round")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--threads", type=int, default=1, help="rl.threads (torch CPU threads)")
    ap.add_argument("--json", type=Path, default=OUT / "rl_on_off.json")
    ap.add_argument("--plot", type=Path, default=PLOT)
    ap.add_argument("--run-timeout-s", type=float, default=3600, help="kill one run after this")
    ap.add_argument("--report", action="store_true", help="no runs: table and plot from --json")
    args = ap.parse_args()
    settings = settings_of(args)
    results = load_results(args.json)
    shown = results[0]["settings"] if args.report and results else settings
    title = (f"quickstart, {shown['iterations']} LLM samples; RL every {shown['every']} "
             f"evaluated children, {shown['steps']} GRPO step(s) x 4 completions, "
             f"lr {shown['lr']}")
    if not args.report:
        stale = [r for r in results if r.get("settings") != settings]
        if stale:
            sys.exit(f"{args.json} holds {len(stale)} result(s) with other settings "
                     f"({stale[0].get('settings')}); pass another --json or move it away")
        run_missing(args, settings, results)
    report(results, title)
    if results:
        args.json.with_suffix(".md").write_text(markdown(results))
    if results and plot(results, args.plot, title):
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
