"""Quickstart over several seeds with the embedded model: best score vs iterations, per seed.

Each seed is a real `evoforge run` (subprocess, own SQLite file); the curve of best score against
iterations is read back from the database. Prints a table, writes JSON and (when matplotlib is
installed) a PNG plot under benchmarks/out/.

    .venv/bin/python -m benchmarks.quality.quickstart_seeds [--seeds 0,1,2,3,4] [--iterations 40]
        [--config RUN.toml] [--name quickstart_seeds]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from rich.console import Console
from rich.table import Table

from benchmarks.harness import plots
from benchmarks.harness.evoforge import run_cli
from benchmarks.harness.paths import PROBLEMS
from benchmarks.harness.store import out_file, write_json


def run_seed(problem: Path, seed: int, iterations: int, home: Path,
             config: str | None = None) -> dict:
    """Runs evoforge once (config: the text of a RUN.toml); returns its JSON summary plus the
    best-so-far curve."""
    run = run_cli(problem, home, seed=seed, iterations=iterations, config=config, timeout_s=None)
    return run.summary | {"wall_s": run.wall_s, "curve": run.iteration_curve()}


def plot(results: list[dict], path: Path) -> bool:
    """Draws best score vs iterations for every seed; returns False without matplotlib."""
    if (plt := plots.pyplot()) is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4))
    for r in results:
        ax.step(range(len(r["curve"])), r["curve"], where="post", label=f"seed {r['seed']}")
    ax.set_xlabel("iteration (LLM completions)")
    ax.set_ylabel("best score so far")
    ax.set_title("quickstart with the embedded SmolLM2-135M")
    ax.legend()
    plots.save(fig, path)
    return True


def main() -> None:
    """Runs every seed and prints the table."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", type=Path, default=PROBLEMS / "quickstart")
    ap.add_argument("--seeds", default="0,1,2,3,4")
    ap.add_argument("--iterations", type=int, default=40)
    ap.add_argument("--config", type=Path, help="a RUN.toml every seed runs with")
    ap.add_argument("--name", default="quickstart_seeds", help="output files' name")
    args = ap.parse_args()
    config = args.config.read_text() if args.config else None
    console = Console(width=150)
    results = []
    for seed in (int(s) for s in args.seeds.split(",")):
        with tempfile.TemporaryDirectory() as tmp:
            console.print(f"seed {seed}: {args.iterations} iterations ...")
            r = run_seed(args.problem, seed, args.iterations, Path(tmp), config)
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
    mean = sum(r["best_score"] for r in results) / len(results)
    console.print(f"improved over the initial program in {improved} of {len(results)} seeds; "
                  f"mean best {mean:.4f}")
    write_json(out_file(f"{args.name}.json"), results, indent=2)
    if plot(results, out_file(f"{args.name}.png")):
        console.print(f"plot: {out_file(args.name + '.png')}")


if __name__ == "__main__":
    main()
