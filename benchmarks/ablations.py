"""Search-feature ablations with the embedded model: each feature on alone vs the baseline, paired
seeds, best score vs LLM calls and vs tokens, and the evaluations novelty rejection saved.

Every run is a real run (in-process engine, embedded SmolLM2, local sandbox, its own SQLite file);
all configs share num_islands = 2 so that crossover and island resets have islands to work with.
Prints a table per problem, writes JSON and a PNG under benchmarks/out/.

    nice -n 10 .venv/bin/python benchmarks/ablations.py --problems quickstart --seeds 0,1,2 \
        --iterations 20 [--configs baseline,novelty,...]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
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
from service.launch import create_run, drive, run_config_for
from service.problem import load_problem

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
    return {"config": name, "seed": seed, "initial": run.initial_score, "best": run.best_score,
            "llm_calls": run.llm_calls, "tokens": run.prompt_tokens + run.completion_tokens,
            "evaluations": run.evaluations, "failed": run.failed,
            "too_similar": sum(1 for x in samples if x[3] == "too_similar"),
            "scratchpads": len(pads), "wall_s": wall, "by_call": by_call, "by_tokens": by_tokens}


def table(problem: str, results: list[dict], console: Console) -> list[dict]:
    """Prints the per-config table (means over seeds, paired differences vs baseline)."""
    rows = []
    base = {r["seed"]: r["best"] for r in results if r["config"] == "baseline"}
    t = Table(title=f"{problem}: each feature alone vs baseline, embedded SmolLM2-135M")
    for col in ("config", "seeds", "mean best", "paired diff vs base", "wins/ties/losses",
                "best@10 calls", "mean tokens", "evals", "too similar (saved)", "wall s"):
        t.add_column(col, justify="right")
    for name in CONFIGS:
        rs = [r for r in results if r["config"] == name]
        if not rs:
            continue
        diffs = [r["best"] - base[r["seed"]] for r in rs if r["seed"] in base]
        at10 = [r["by_call"][min(10, len(r["by_call"]) - 1)] for r in rs]
        row = {"config": name, "seeds": len(rs), "mean_best": statistics.mean(r["best"] for r in rs),
               "paired_diff": statistics.mean(diffs) if diffs else None,
               "wins": sum(d > 1e-12 for d in diffs), "ties": sum(abs(d) <= 1e-12 for d in diffs),
               "losses": sum(d < -1e-12 for d in diffs), "best_at_10": statistics.mean(at10),
               "tokens": statistics.mean(r["tokens"] for r in rs),
               "evaluations": statistics.mean(r["evaluations"] for r in rs),
               "too_similar": sum(r["too_similar"] for r in rs),
               "wall_s": statistics.mean(r["wall_s"] for r in rs)}
        rows.append(row)
        t.add_row(name, str(row["seeds"]), f"{row['mean_best']:.4f}",
                  "-" if row["paired_diff"] is None else f"{row['paired_diff']:+.4f}",
                  f"{row['wins']}/{row['ties']}/{row['losses']}", f"{row['best_at_10']:.4f}",
                  f"{row['tokens']:.0f}", f"{row['evaluations']:.1f}", str(row["too_similar"]),
                  f"{row['wall_s']:.0f}")
    console.print(t)
    return rows


def plot(problem: str, results: list[dict], path: Path) -> bool:
    """Mean best-so-far vs LLM calls and vs tokens per config; False without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4))
    for name in CONFIGS:
        rs = [r for r in results if r["config"] == name]
        if not rs:
            continue
        n = min(len(r["by_call"]) for r in rs)
        a.plot(range(n), [statistics.mean(r["by_call"][i] for r in rs) for i in range(n)],
               label=name, drawstyle="steps-post")
        grid = sorted({tok for r in rs for tok, _ in r["by_tokens"]})
        b.plot(grid, [statistics.mean(_at(r["by_tokens"], g) for r in rs) for g in grid],
               label=name, drawstyle="steps-post")
    a.set_xlabel("LLM calls")
    b.set_xlabel("tokens (prompt + completion, scratchpad included)")
    for ax in (a, b):
        ax.set_ylabel("best score so far (mean over seeds)")
    a.legend(fontsize=8)
    fig.suptitle(f"{problem}: search-feature ablations, embedded SmolLM2-135M")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    return True


def _at(curve: list[tuple[int, float]], tokens: int) -> float:
    """Returns the best score reached within a number of tokens."""
    value = curve[0][1]
    for used, best in curve:
        if used > tokens:
            break
        value = best
    return value


def main() -> None:
    """Runs every problem x config x seed and prints the tables."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problems", default="quickstart,bin_packing")
    ap.add_argument("--configs", default=",".join(CONFIGS))
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--report", action="store_true",
                    help="Only print the table and plot from the stored JSON (e.g. of a cut-off run).")
    args = ap.parse_args()
    logging.basicConfig(level=logging.ERROR)
    console = Console(width=170)
    OUT.mkdir(parents=True, exist_ok=True)
    for problem in args.problems.split(","):
        results: list[dict] = []
        out = OUT / f"ablations_{problem}.json"
        if args.report:
            results = json.loads(out.read_text())["results"]
            done = {r["seed"] for r in results if r["config"] == "baseline"}
            results = [r for r in results if r["seed"] in done and sum(  # complete seeds only
                q["seed"] == r["seed"] for q in results) == len(CONFIGS)]
        elif out.exists():  # keep earlier runs (other seeds / configs) of the same problem
            results = json.loads(out.read_text())["results"]
        for seed in [] if args.report else (int(s) for s in args.seeds.split(",")):
            for name in args.configs.split(","):
                with tempfile.TemporaryDirectory() as tmp:
                    r = one_run(ROOT / "problems" / problem, name, seed, args.iterations,
                                Path(tmp))
                results = [q for q in results if (q["config"], q["seed"]) != (name, seed)]
                results.append(r)
                console.print(f"{problem} seed {seed} {name}: best {r['best']:.4f} "
                              f"(initial {r['initial']:.4f}) in {r['wall_s']:.0f}s")
                out.write_text(json.dumps({"results": results}, indent=1))
        rows = table(problem, results, console)
        out.write_text(json.dumps({"results": results, "table": rows}, indent=1))
        if plot(problem, results, OUT / f"ablations_{problem}.png"):
            console.print(f"plot: {OUT / f'ablations_{problem}.png'}")


if __name__ == "__main__":
    main()
