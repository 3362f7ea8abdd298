"""Search-feature ablations with the embedded model: each feature on alone vs the baseline, paired
seeds, best score vs LLM calls and vs tokens, and the evaluations novelty rejection saved.

Every run is a real run (in-process engine, embedded SmolLM2, local sandbox, its own SQLite file);
all configs share num_islands = 2 so that crossover and island resets have islands to work with.
Prints a table per problem (paired differences with a bootstrap CI and a sign test), writes JSON
and a PNG under benchmarks/out/. Resumable: a (problem, config, seed) already saved in the JSON
with the same iterations is skipped, and the JSON is rewritten after every run, so a crash or a
kill loses at most the run in progress. Seeds are the outer loop, so a cut-off run leaves whole
seeds (every config, every problem) for the report.

    nice -n 10 .venv/bin/python benchmarks/ablations.py --problems quickstart,bin_packing \
        --seeds 0,1,2,3,4 --iterations 20 [--configs baseline,novelty,...] [--force]
    .venv/bin/python benchmarks/ablations.py --report [--markdown]   # tables + plots from the JSON
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import math
import os
import random
import re
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select

from service.config import Settings
from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow, ScratchpadRow
from service.problems.load import load_problem
from service.runs import create_run, drive, run_config_for

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "out"
BASE: dict[str, Any] = {"search": {"num_islands": 2, "migration_interval": 10}}
CONFIGS: dict[str, dict[str, Any]] = {
    "baseline": {},
    "novelty": {"search": {"novelty": {"enabled": True}}},
    "scratchpad": {"search": {"scratchpad": {"enabled": True, "every": 5}}},
    "crossover": {"search": {"crossover_rate": 0.3}},
    "reset+temp": {"search": {"island_reset_iterations": 6},
                   "llm": {"temperature_schedule": "cosine", "temperature_end": 0.3,
                           "temperature_period": 10}},
    "ensemble": {"llm": {"models": [{"name": "smol-t0.3", "temperatures": [0.3]},
                                    {"name": "smol-t1.0", "temperatures": [1.0]}],
                         "selector": "ucb1"}},
}


def merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Returns a deep merge of b over a."""
    out = dict(a)
    for k, v in b.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def one_run(problem_dir: Path, name: str, seed: int, iterations: int, home: Path) -> dict:
    """Runs one config on one seed; returns its summary and best-so-far curves."""
    problem = load_problem(problem_dir)
    layer = merge(merge(BASE, CONFIGS[name]), {"seed": seed, "budget": {
        "iterations": iterations, "target_score": None}})
    cfg = run_config_for(problem, None, layer)
    settings = Settings(home=home)
    db = Database(f"sqlite:///{home / 'evoforge.db'}")
    run_id = create_run(db, problem, cfg)
    started = time.monotonic()
    run = asyncio.run(drive(db, run_id, settings))
    wall = time.monotonic() - started
    with db.session() as s:
        samples = s.execute(select(LLMSampleRow.id, LLMSampleRow.group_id,
                                   LLMSampleRow.prompt_tokens + LLMSampleRow.completion_tokens,
                                   LLMSampleRow.outcome, LLMSampleRow.iteration)
                            .where(LLMSampleRow.run_id == run_id).order_by(LLMSampleRow.id)).all()
        scores = dict(s.execute(select(ProgramRow.sample_id, ProgramRow.score).where(
            ProgramRow.run_id == run_id, ProgramRow.status == "ok",
            ProgramRow.sample_id.is_not(None))).all())
        pads = s.execute(select(ScratchpadRow.iteration, ScratchpadRow.prompt_tokens
                                + ScratchpadRow.completion_tokens)
                         .where(ScratchpadRow.run_id == run_id)).all()
    db.close()
    best, tokens = run.initial_score, 0
    by_call, by_tokens = [best], [(0, best)]
    pad_tokens = dict(pads)
    for sid, _group, used, _outcome, iteration in samples:
        tokens += used + pad_tokens.pop(iteration - 1, 0)
        score = scores.get(sid)
        if score is not None and (best is None or score > best):
            best = score
        by_call.append(best)
        by_tokens.append((tokens, best))
    return {"problem": problem_dir.name, "config": name, "seed": seed, "iterations": iterations,
            "initial": run.initial_score, "best": run.best_score,
            "llm_calls": run.llm_calls, "tokens": run.prompt_tokens + run.completion_tokens,
            "evaluations": run.evaluations, "failed": run.failed,
            "too_similar": sum(1 for x in samples if x[3] == "too_similar"),
            "scratchpads": len(pads), "wall_s": wall, "by_call": by_call, "by_tokens": by_tokens}


def paired_stats(diffs: list[float], resamples: int = 10000) -> dict[str, Any]:
    """Returns mean paired difference, a 95% paired-bootstrap CI and a two-sided sign test."""
    if not diffs:
        return {"mean": None, "ci": None, "wins": 0, "ties": 0, "losses": 0, "sign_p": None}
    rng = random.Random(0)
    n = len(diffs)
    means = sorted(sum(rng.choice(diffs) for _ in range(n)) / n for _ in range(resamples))
    wins = sum(d > 1e-12 for d in diffs)
    losses = sum(d < -1e-12 for d in diffs)
    return {"mean": statistics.mean(diffs),
            "ci": (means[int(0.025 * resamples)], means[int(0.975 * resamples) - 1]),
            "wins": wins, "ties": n - wins - losses, "losses": losses,
            "sign_p": sign_test(wins, losses)}


def sign_test(wins: int, losses: int) -> float:
    """Returns the two-sided exact sign-test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2 ** n
    return min(1.0, 2 * tail)


def summarise(results: list[dict]) -> list[dict]:
    """Returns one row per config: means over seeds and paired statistics vs the baseline."""
    rows = []
    base = {r["seed"]: r for r in results if r["config"] == "baseline"}
    for name in CONFIGS:
        rs = sorted((r for r in results if r["config"] == name), key=lambda r: r["seed"])
        if not rs:
            continue
        diffs = [r["best"] - base[r["seed"]]["best"] for r in rs if r["seed"] in base]
        half = max(1, min(len(r["by_call"]) for r in rs) // 2)
        stats = paired_stats(diffs) if name != "baseline" else paired_stats([])
        rows.append({
            "config": name, "seeds": len(rs), "llm_calls": statistics.mean(r["llm_calls"] for r in rs),
            "mean_best": statistics.mean(r["best"] for r in rs),
            "sd_best": statistics.stdev(r["best"] for r in rs) if len(rs) > 1 else 0.0,
            "paired_diff": stats["mean"], "ci": stats["ci"], "sign_p": stats["sign_p"],
            "wins": stats["wins"], "ties": stats["ties"], "losses": stats["losses"],
            "improved": sum(r["best"] > r["initial"] + 1e-12 for r in rs),
            "half_calls": half, "best_at_half": statistics.mean(r["by_call"][half] for r in rs),
            "tokens": statistics.mean(r["tokens"] for r in rs),
            "evaluations": statistics.mean(r["evaluations"] for r in rs),
            "failed": statistics.mean(r["failed"] for r in rs),
            "too_similar": sum(r["too_similar"] for r in rs),
            "wall_s": statistics.mean(r["wall_s"] for r in rs)})
    return rows


def _diff(row: dict) -> str:
    """Formats a paired difference with its CI."""
    if row["paired_diff"] is None:
        return "—"
    lo, hi = row["ci"]
    return f"{row['paired_diff']:+.4f} [{lo:+.4f}, {hi:+.4f}]"


def table(problem: str, rows: list[dict], console: Console) -> None:
    """Prints the per-config table."""
    t = Table(title=f"{problem}: each feature alone vs baseline, embedded SmolLM2-135M")
    for col in ("config", "seeds", "calls", "mean best (sd)", "paired diff [95% bootstrap CI]",
                "W/T/L", "sign p", "improved", "best@half", "tokens", "evals", "failed",
                "too similar (saved)", "wall s"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["config"], str(r["seeds"]), f"{r['llm_calls']:.0f}",
                  f"{r['mean_best']:.4f} ({r['sd_best']:.4f})", _diff(r),
                  "—" if r["config"] == "baseline" else f"{r['wins']}/{r['ties']}/{r['losses']}",
                  "—" if r["sign_p"] is None else f"{r['sign_p']:.2f}",
                  f"{r['improved']}/{r['seeds']}", f"{r['best_at_half']:.4f}", f"{r['tokens']:.0f}",
                  f"{r['evaluations']:.1f}", f"{r['failed']:.1f}", str(r["too_similar"]),
                  f"{r['wall_s']:.0f}")
    console.print(t)


def markdown(rows: list[dict]) -> str:
    """Returns the table as Markdown for docs/benchmarks.md."""
    half = rows[0]["half_calls"] if rows else 0
    lines = [("| config | mean best (sd) | paired diff vs baseline [95% bootstrap CI] | W/T/L | "
              f"sign-test p | seeds improved | best at {half} calls | mean tokens | evaluations | "
              "failed | too similar (evaluations saved) |"),
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        base = r["config"] == "baseline"
        wtl = "—" if base else f"{r['wins']}/{r['ties']}/{r['losses']}"
        sign = "—" if base else f"{r['sign_p']:.2f}"
        lines.append(
            f"| {r['config']} | {r['mean_best']:.4f} ({r['sd_best']:.4f}) | {_diff(r)} | {wtl} | "
            f"{sign} | {r['improved']}/{r['seeds']} | {r['best_at_half']:.4f} | "
            f"{r['tokens']:.0f} | {r['evaluations']:.1f} | {r['failed']:.1f} | "
            f"{r['too_similar']} |")
    text = "\n".join(lines).replace("+0.0000 [+0.0000, +0.0000]", "0 [0, 0]")
    return re.sub(r"-(?=\d)", "−", text)  # typographic minus on numbers only


def per_seed_markdown(results: list[dict]) -> str:
    """Returns the best score of every config on every seed as Markdown (the pairs themselves)."""
    seeds = sorted({r["seed"] for r in results})
    best = {(r["config"], r["seed"]): r["best"] for r in results}
    lines = ["| config | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---:|" * len(seeds)]
    lines += [f"| {name} | " + " | ".join(f"{best[name, s]:.4f}" for s in seeds) + " |"
              for name in CONFIGS if any(c == name for c, _ in best)]
    return "\n".join(lines)


def plot(problem: str, results: list[dict], path: Path) -> bool:
    """Mean best-so-far vs LLM calls and vs tokens per config, shaded ±1 standard error."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(12, 4.5))
    seeds = 0
    for name in CONFIGS:
        rs = [r for r in results if r["config"] == name]
        if not rs:
            continue
        seeds = max(seeds, len(rs))
        n = min(len(r["by_call"]) for r in rs)
        curves = [[r["by_call"][i] for r in rs] for i in range(n)]
        line = _band(a, list(range(n)), curves, name)
        grid = sorted({tok for r in rs for tok, _ in r["by_tokens"]})
        _band(b, grid, [[_at(r["by_tokens"], g) for r in rs] for g in grid], name, line)
    a.set_xlabel("LLM calls")
    b.set_xlabel("tokens (prompt + completion, scratchpad included)")
    for ax in (a, b):
        ax.set_ylabel(f"best score so far (mean of {seeds} seeds ± 1 s.e.)")
        ax.grid(alpha=0.3)
    a.legend(fontsize=8)
    fig.suptitle(f"{problem}: search-feature ablations, embedded SmolLM2-135M")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def _band(ax: Any, xs: list[float], values: list[list[float]], label: str,
          like: Any = None) -> Any:
    """Draws the mean of each point's values as a step line with a ±1 s.e. band; returns the line."""
    xs, values = [*xs, xs[-1] + 0.25 * (xs[-1] - xs[0]) / max(1, len(xs) - 1)], [*values, values[-1]]
    mean = [statistics.mean(v) for v in values]  # (the last point repeated: its step shows)
    se = [statistics.stdev(v) / math.sqrt(len(v)) if len(v) > 1 else 0.0 for v in values]
    kw = {"color": like.get_color()} if like is not None else {}
    (line,) = ax.plot(xs, mean, label=label, drawstyle="steps-post", **kw)
    ax.fill_between(xs, [m - s for m, s in zip(mean, se, strict=True)],
                    [m + s for m, s in zip(mean, se, strict=True)], step="post", alpha=0.12,
                    color=line.get_color())
    return line


def _at(curve: list[tuple[int, float]], tokens: int) -> float:
    """Returns the best score reached within a number of tokens."""
    value = curve[0][1]
    for used, best in curve:
        if used > tokens:
            break
        value = best
    return value


def complete_seeds(results: list[dict]) -> list[dict]:
    """Returns the results of the seeds that have every stored config (paired comparisons only)."""
    configs = {r["config"] for r in results}
    whole = {r["seed"] for r in results
             if configs <= {q["config"] for q in results if q["seed"] == r["seed"]}}
    return [r for r in results if r["seed"] in whole]


def save(path: Path, payload: dict) -> None:
    """Writes JSON atomically (a kill mid-write keeps the previous file)."""
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(payload, indent=1))
    os.replace(tmp, path)


def load(path: Path) -> list[dict]:
    """Returns the results stored for one problem (none when the file is missing)."""
    return json.loads(path.read_text())["results"] if path.exists() else []


def main() -> None:
    """Runs every seed x problem x config not yet saved, then prints the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default="quickstart,bin_packing")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--iterations", type=int, default=20,
                    help="LLM calls per run; a comma list gives one per problem.")
    ap.add_argument("--force", action="store_true", help="Rerun results already saved.")
    ap.add_argument("--report", action="store_true",
                    help="Only print the tables and plots from the stored JSON (complete seeds).")
    ap.add_argument("--markdown", action="store_true", help="Also print Markdown tables.")
    ap.add_argument("--out", type=Path, default=OUT, help="Folder for the JSON and PNG files.")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=200)
    args.out.mkdir(parents=True, exist_ok=True)
    problems = args.problems.split(",")
    configs = args.configs.split(",")
    its = [int(i) for i in str(args.iterations).split(",")]
    iterations = dict(zip(problems, its if len(its) > 1 else its * len(problems), strict=True))
    paths = {p: args.out / f"ablations_{p}.json" for p in problems}
    for seed in [] if args.report else (int(s) for s in args.seeds.split(",")):
        for problem in problems:
            for name in configs:
                results = load(paths[problem])
                if not args.force and any(
                        (q["config"], q["seed"], q.get("iterations")) ==
                        (name, seed, iterations[problem]) for q in results):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    r = one_run(ROOT / "problems" / problem, name, seed, iterations[problem],
                                Path(tmp))
                results = [q for q in load(paths[problem])
                           if (q["config"], q["seed"]) != (name, seed)] + [r]
                console.print(f"{problem} seed {seed} {name}: best {r['best']:.4f} "
                              f"(initial {r['initial']:.4f}) {r['llm_calls']} calls "
                              f"{r['tokens']} tokens in {r['wall_s']:.0f}s "
                              f"\\[load {os.getloadavg()[0]:.1f}]")
                save(paths[problem], {"results": results})
    for problem in problems:
        stored = load(paths[problem])
        results = complete_seeds(stored)
        if len(results) < len(stored):
            console.print(f"{problem}: {len(stored) - len(results)} result(s) of incomplete "
                          "seeds left out of the table")
        if len({r.get("iterations") for r in results}) > 1:
            console.print(f"{problem}: warning, the stored runs have different iteration budgets")
        rows = summarise(results)
        table(problem, rows, console)
        if args.markdown:
            console.print(markdown(rows), markup=False, highlight=False, soft_wrap=True)
            console.print(per_seed_markdown(results), markup=False, highlight=False,
                          soft_wrap=True)
        save(paths[problem], {"results": stored, "table": rows})
        if results and plot(problem, results, args.out / f"ablations_{problem}.png"):
            console.print(f"plot: {args.out / f'ablations_{problem}.png'}")


if __name__ == "__main__":
    main()
