"""Search-feature ablations with the embedded model: each feature on alone vs the baseline, paired
seeds, best score vs LLM calls and vs tokens, and the evaluations novelty rejection saved.

Every run is a real run (in-process engine, embedded SmolLM2, local sandbox, its own SQLite file);
all configs share num_islands = 2 so that crossover and island resets have islands to work with.
Prints a table per problem (paired differences with a bootstrap CI and a sign test), writes JSON
and a PNG under benchmarks/out/. Resumable: a (problem, config, seed) already saved in the JSON
with the same iterations is skipped, and the JSON is rewritten after every run, so a crash or a
kill loses at most the run in progress. Seeds are the outer loop, so a cut-off run leaves whole
seeds (every config, every problem) for the report.

    nice -n 10 .venv/bin/python -m benchmarks.quality.ablations --problems quickstart,bin_packing \
        --seeds 0,1,2,3,4 --iterations 20 [--configs baseline,novelty,...] [--force]
    .venv/bin/python -m benchmarks.quality.ablations --report [--markdown]  # JSON -> tables + plots
"""

from __future__ import annotations

import argparse
import logging
import os
import statistics
import tempfile
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import select

from benchmarks.harness.evoforge import run_in_process
from benchmarks.harness.paths import OUT, PROBLEMS
from benchmarks.harness.stats import paired_stats
from benchmarks.harness.store import read_json, write_json
from benchmarks.quality.ablations_report import markdown, per_seed_markdown, plot, table
from service.db.models import ScratchpadRow
from service.problems.load import load_problem
from service.runs import run_config_for

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
    run = run_in_process(problem, run_config_for(problem, None, layer), home)
    samples = run.samples()
    with run.session() as s:
        pads = s.execute(select(ScratchpadRow.iteration, ScratchpadRow.prompt_tokens
                                + ScratchpadRow.completion_tokens)
                         .where(ScratchpadRow.run_id == run.run_id)).all()
    summary, curve = run.summary, run.sample_curve(samples)
    tokens, by_tokens = 0, [(0, summary["initial_score"])]
    pad_tokens = dict(pads)
    for sample, best in zip(samples, curve, strict=True):
        tokens += sample.tokens + pad_tokens.pop(sample.iteration - 1, 0)
        by_tokens.append((tokens, best))
    return {"problem": problem_dir.name, "config": name, "seed": seed, "iterations": iterations,
            "initial": summary["initial_score"], "best": summary["best_score"],
            "llm_calls": summary["llm_calls"], "tokens": summary["tokens"],
            "evaluations": summary["evaluations"], "failed": summary["failed"],
            "too_similar": sum(1 for x in samples if x.outcome == "too_similar"),
            "scratchpads": len(pads), "wall_s": run.wall_s,
            "by_call": [summary["initial_score"], *curve], "by_tokens": by_tokens}


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
            "config": name, "seeds": len(rs),
            "llm_calls": statistics.mean(r["llm_calls"] for r in rs),
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


def complete_seeds(results: list[dict]) -> list[dict]:
    """Returns the results of the seeds that have every stored config (paired comparisons only)."""
    configs = {r["config"] for r in results}
    whole = {r["seed"] for r in results
             if configs <= {q["config"] for q in results if q["seed"] == r["seed"]}}
    return [r for r in results if r["seed"] in whole]


def load(path: Path) -> list[dict]:
    """Returns the results stored for one problem (none when the file is missing)."""
    return read_json(path, {"results": []})["results"]


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
    if not args.report:
        run_missing(args, configs, iterations, paths, console)
    for problem in problems:
        report(problem, paths[problem], args, console)


def run_missing(args: argparse.Namespace, configs: list[str], iterations: dict[str, int],
                paths: dict[str, Path], console: Console) -> None:
    """Runs every seed x problem x config not saved yet; saves the JSON after each run."""
    for seed in (int(s) for s in args.seeds.split(",")):
        for problem, path in paths.items():
            for name in configs:
                results = load(path)
                if not args.force and any(
                        (q["config"], q["seed"], q.get("iterations")) ==
                        (name, seed, iterations[problem]) for q in results):
                    continue
                with tempfile.TemporaryDirectory() as tmp:
                    r = one_run(PROBLEMS / problem, name, seed, iterations[problem], Path(tmp))
                results = [q for q in load(path) if (q["config"], q["seed"]) != (name, seed)] + [r]
                console.print(f"{problem} seed {seed} {name}: best {r['best']:.4f} "
                              f"(initial {r['initial']:.4f}) {r['llm_calls']} calls "
                              f"{r['tokens']} tokens in {r['wall_s']:.0f}s "
                              f"\\[load {os.getloadavg()[0]:.1f}]")
                write_json(path, {"results": results})


def report(problem: str, path: Path, args: argparse.Namespace, console: Console) -> None:
    """Prints one problem's table (complete seeds only), stores it with the results, plots."""
    stored = load(path)
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
        console.print(per_seed_markdown(results, list(CONFIGS)), markup=False, highlight=False,
                      soft_wrap=True)
    write_json(path, {"results": stored, "table": rows})
    if results and plot(problem, results, list(CONFIGS), args.out / f"ablations_{problem}.png"):
        console.print(f"plot: {args.out / f'ablations_{problem}.png'}")

if __name__ == "__main__":
    main()
