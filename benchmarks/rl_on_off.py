"""RL-on vs RL-off on quickstart: same budget, paired seeds, embedded SmolLM2 on CPU.

Each (seed, arm) is a real `evoforge run` (subprocess, own SQLite file); RL-on adds an [rl]
section (GRPO + LoRA every N evaluated children; the round's own children count in the budget).
Reports best score against LLM samples, and per writer (base model, training rounds, published
adapters) how many completions became valid children and their mean score; the adapters' children
are also set against the RL-off run's children at the same sample positions. Resumable: results
are appended to benchmarks/out/rl_on_off.json after every run, and a (seed, arm) already there
with the same settings is not run again. Prints a table and draws docs/rl_on_off.png.

    nice -n 10 .venv/bin/python benchmarks/rl_on_off.py [--seeds 0,1,2,3,4] [--iterations 30]
        [--every 8] [--steps 1] [--lr 3e-4] [--threads 1]
    .venv/bin/python benchmarks/rl_on_off.py --report      # table and plot from the JSON only
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
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from service.db import Database
from service.db.models import AdapterRow, LLMSampleRow, ProgramRow

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
PLOT = ROOT / "docs" / "rl_on_off.png"
ARMS = ("off", "on")
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
    cmd = [sys.executable, "-m", "service.cli", "run", str(ROOT / "problems" / "quickstart"),
           "--seed", str(seed), "--iterations", str(iterations), "--json"]
    if rl is not None:
        (home / "rl.toml").write_text(rl)
        cmd += ["--config", str(home / "rl.toml")]
    started = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, timeout=timeout_s,
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
        adapters = s.execute(select(AdapterRow.name, AdapterRow.steps, AdapterRow.reward_stats)
                             .where(AdapterRow.run_id == summary["run_id"])
                             .order_by(AdapterRow.version)).all()
    db.close()
    summary.update(trace(rows, summary.get("initial_score")))
    summary["adapters"] = [{"name": n, "steps": st, "reward_stats": rs} for n, st, rs in adapters]
    return summary


def trace(rows: list[Any], initial: float | None) -> dict[str, Any]:
    """Returns the best-so-far curve, each sample's writer and score, and per-writer stats."""
    best, curve, seq, scores, writers = initial, [], [], [], {}
    for adapter, _outcome, score in rows:
        if score is not None and (best is None or score > best):
            best = score
        curve.append(best)
        seq.append(_writer(adapter))
        scores.append(score)
        w = writers.setdefault(seq[-1], {"samples": 0, "scores": []})
        w["samples"] += 1
        if score is not None:
            w["scores"].append(score)
    return {"curve": curve, "writer_seq": seq, "sample_scores": scores,
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
    return json.loads(path.read_text()) if path.exists() else []


def position_matched(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Pools, over seeds, the adapters' children and the RL-off children at the same positions."""
    by = {(r["seed"], r["arm"]): r for r in results}
    pooled: dict[str, list[float | None]] = {"adapter": [], "off_same_positions": []}
    for (seed, arm), on in by.items():
        off = by.get((seed, "off"))
        if arm != "on" or off is None or "writer_seq" not in on:
            continue
        for i, w in enumerate(on["writer_seq"]):
            if w == "adapter" and i < len(off["sample_scores"]):
                pooled["adapter"].append(on["sample_scores"][i])
                pooled["off_same_positions"].append(off["sample_scores"][i])
    return {k: {"samples": len(v), "scored": sum(x is not None for x in v),
                "mean_score": statistics.fmean(x for x in v if x is not None)
                if any(x is not None for x in v) else None} for k, v in pooled.items()}


def report(results: list[dict[str, Any]], title: str) -> None:
    """Prints the per-run table, the paired summary and the position-matched comparison."""
    table = Table("seed", "arm", "best", "best @ half", "samples", "base: valid / mean",
                  "training: valid / mean", "adapter: valid / mean", "rounds", "wall s",
                  title=title)
    for r in sorted(results, key=lambda r: (r["seed"], r["arm"])):
        half = r["curve"][len(r["curve"]) // 2 - 1] if r["curve"] else None
        cells = []
        for w in ("base", "training", "adapter"):
            s = r["writers"].get(w)
            cells.append("-" if s is None else f"{s['scored']}/{s['samples']} / "
                         + ("-" if s["mean_score"] is None else f"{s['mean_score']:.3f}"))
        table.add_row(str(r["seed"]), r["arm"], f"{r['best_score']:.4f}",
                      "-" if half is None else f"{half:.4f}", str(len(r["curve"])), *cells,
                      str(len(r.get("adapters", []))), f"{r['wall_s']:.0f}")
    console = Console(width=180)
    console.print(table)
    by = {(r["seed"], r["arm"]): r for r in results}
    seeds = sorted({s for s, a in by if (s, "off") in by and (s, "on") in by})
    if not seeds:
        return
    diffs = [by[s, "on"]["best_score"] - by[s, "off"]["best_score"] for s in seeds]
    summary = Table("arm", "seeds", "best (mean ± sd)", "improved", "mean wall s",
                    title="paired summary (on - off)")
    for arm in ARMS:
        best = [by[s, arm]["best_score"] for s in seeds]
        init = [by[s, arm].get("initial_score") or 0.0 for s in seeds]
        summary.add_row(arm, str(len(seeds)), f"{statistics.fmean(best):.4f} ± "
                        f"{statistics.stdev(best) if len(best) > 1 else 0:.4f}",
                        f"{sum(b > i for b, i in zip(best, init))}/{len(seeds)}",
                        f"{statistics.fmean(by[s, arm]['wall_s'] for s in seeds):.0f}")
    console.print(summary)
    wins = sum(d > 0 for d in diffs), sum(d == 0 for d in diffs), sum(d < 0 for d in diffs)
    console.print(f"paired difference in best, on - off: mean {statistics.fmean(diffs):+.4f}, "
                  f"per seed {', '.join(f'{d:+.4f}' for d in diffs)}; wins/ties/losses "
                  f"{wins[0]}/{wins[1]}/{wins[2]}")
    for k, v in position_matched(results).items():
        mean = "-" if v["mean_score"] is None else f"{v['mean_score']:.4f}"
        console.print(f"{k}: {v['scored']}/{v['samples']} valid, mean child score {mean}")


def markdown(results: list[dict[str, Any]]) -> str:
    """Returns the per-run table as Markdown (for docs/benchmarks.md)."""
    n = max((len(r["curve"]) for r in results), default=0)
    head = ["seed", "arm", "best", f"best @ {n // 2}", "base: valid / mean", "training: valid / mean",
            "adapter: valid / mean", "adapters", "wall s", "load avg"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in sorted(results, key=lambda r: (r["seed"], r["arm"])):
        half = r["curve"][len(r["curve"]) // 2 - 1] if r["curve"] else None
        cells = []
        for w in ("base", "training", "adapter"):
            st = r["writers"].get(w)
            cells.append("–" if st is None else f"{st['scored']}/{st['samples']} / "
                         + ("–" if st["mean_score"] is None else f"{st['mean_score']:.3f}"))
        lines.append("| " + " | ".join([
            str(r["seed"]), r["arm"], f"{r['best_score']:.4f}",
            "–" if half is None else f"{half:.4f}", *cells, str(len(r.get("adapters", []))),
            f"{r['wall_s']:.0f}", f"{r['load_avg'][0]:.1f}" if "load_avg" in r else "–"]) + " |")
    return "\n".join(lines) + "\n"


def plot(results: list[dict[str, Any]], path: Path, title: str) -> bool:
    """Draws best score vs LLM samples per arm (mean, min-max band, seeds); False without mpl."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, colour, dash in (("on", "tab:red", "-"), ("off", "tab:blue", "--")):
        runs = [r["curve"] for r in results if r["arm"] == arm and r["curve"]]
        if not runs:
            continue
        n = max(len(c) for c in runs)
        padded = [c + [c[-1]] * (n - len(c)) for c in runs]
        xs = range(1, n + 1)
        cols = list(zip(*padded))
        for c in padded:
            ax.step(xs, c, where="post", color=colour, alpha=0.25, lw=0.8)
        ax.fill_between(xs, [min(v) for v in cols], [max(v) for v in cols], step="post",
                        color=colour, alpha=0.12)
        ax.step(xs, [statistics.fmean(v) for v in cols], where="post", color=colour, lw=2.2,
                ls=dash, label=f"RL {arm}: mean of {len(runs)} seeds (band: min-max)")
    for r in results:  # where the RL-on runs trained: ticks along the bottom
        if r["arm"] == "on":
            for i, w in enumerate(r.get("writer_seq", [])):
                if w == "training":
                    ax.plot(i + 1, 0, marker="|", color="tab:red", alpha=0.3,
                            transform=ax.get_xaxis_transform(), ms=8)
    ax.set_xlabel("LLM samples (loop and training-round completions alike; ticks: RL-on "
                  "training-round samples)")
    ax.set_ylabel("best score so far")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


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
    rl = RL_TOML.format(**{k: v for k, v in settings.items() if k != "iterations"})
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
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(results, indent=1))  # after every run
                print(f"seed {seed} {arm}: best {r['best_score']:.4f}, {r['wall_s']:.0f} s, "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    report(results, title)
    if results:
        args.json.with_suffix(".md").write_text(markdown(results))
    if results and plot(results, args.plot, title):
        print(f"plot: {args.plot}")


if __name__ == "__main__":
    main()
