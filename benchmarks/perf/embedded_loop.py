"""The README main job, timed from the inside: where an iteration of the embedded loop goes.

Runs the real engine on a problem (quickstart by default) with the embedded llama.cpp backend,
on the run's defaults, once per variant and seed, interleaved (seed order alternates, to cancel
drift on a shared machine), and prints per variant: wall and CPU per iteration; the LLM's prompt
processing and generation; parsing (answers into children), database (ledger writes) and the
evaluations (which overlap the LLM); the waiting that is left; tokens per LLM call (prompt, of
which reused from the prompt cache, completion); the best score. Ratios are against the first
variant.

Variants: `before` is the loop as it was (the KV cache cleared before every prompt, generation
to the end-of-turn token or max_tokens), `closed` the loop of December 6 (prompt cache kept,
generation stopped where the answer's code block closes, max_tokens fixed), `after` is the code
as it is (also: stopped when the answer loops over the same lines, and max_tokens sized to the
code it rewrites, llm.block_token_factor = 1.5); a suffix `:tN` runs a variant with N llama.cpp
threads (default: one per core), e.g. `after,after:t1`.

    .venv/bin/python -m benchmarks.perf.embedded_loop [--problem problems/quickstart] \
        [--iterations 40] [--seeds 0,1] [--variants before,after]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import os
import resource
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from statistics import fmean
from typing import Any

from rich.console import Console
from rich.table import Table

from benchmarks.harness.evoforge import DB_FILE, summary_of
from benchmarks.harness.paths import PROBLEMS
from benchmarks.harness.store import out_file, write_json
from service.db import Database
from service.evolution.engine import Engine
from service.evolution.prompts import block_closed
from service.problems.load import load_problem
from service.runs import create_run, drive, run_config_for
from service.settings import Settings

VARIANTS = ("before", "closed", "after")
DB_METHODS = ("add_initials", "add_call", "add_side_call", "record_result", "reopen",
              "archive_changed", "add_migrants", "move_run", "update_run", "run",
              "latest_evaluations", "programs", "load_totals")


class Meter:
    """Seconds spent in named parts of one run, and the completions its LLM calls returned."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self.completions: list[Any] = []

    def timed(self, part: str, fn: Callable) -> Callable:
        """Returns fn (sync or async) adding its wall time to `part`."""
        if asyncio.iscoroutinefunction(fn):
            async def run_async(*args: Any, **kwargs: Any) -> Any:
                start = time.perf_counter()
                try:
                    return await fn(*args, **kwargs)
                finally:
                    self.seconds[part] += time.perf_counter() - start
            return run_async

        def run_sync(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                self.seconds[part] += time.perf_counter() - start
        return run_sync


def instrument(engine: Engine, variant: str, meter: Meter) -> None:
    """Times the engine's parts; `before` also restores the old LLM behaviour."""
    llm = engine.llm
    variant = variant.partition(":t")[0]
    llm.prompt_cache = not variant.startswith("before")
    generate = llm.generate

    async def generate_logged(prompts: list, n: int, sampling: Any) -> list:
        if variant.startswith("before"):
            sampling = dataclasses.replace(sampling, stop_when=None,
                                           max_tokens=engine.cfg.llm.max_tokens)
        elif variant.startswith("closed"):
            sampling = dataclasses.replace(sampling, stop_when=block_closed,
                                           max_tokens=engine.cfg.llm.max_tokens)
        batches = await generate(prompts, n, sampling)
        meter.completions.extend(c for batch in batches for c in batch)
        return batches

    llm.generate = meter.timed("llm", generate_logged)
    engine.planner.proposal = meter.timed("parsing", engine.planner.proposal)
    for name in DB_METHODS:
        setattr(engine.ledger, name, meter.timed("database", getattr(engine.ledger, name)))
    engine.executor.evaluate = meter.timed("evaluation", engine.executor.evaluate)


def one_run(problem_dir: Path, variant: str, seed: int, iterations: int) -> dict[str, Any]:
    """Runs the engine once on the problem's defaults; returns its figures."""
    problem = load_problem(problem_dir)
    overrides: dict[str, Any] = {"seed": seed}
    if iterations:
        overrides["budget"] = {"iterations": iterations}
    cfg = run_config_for(problem, None, overrides)
    meter, started = Meter(), {}

    def on_engine(engine: Engine) -> None:
        instrument(engine, variant, meter)
        started["wall"], started["cpu"] = time.perf_counter(), _cpu()

    with tempfile.TemporaryDirectory() as tmp:
        db = Database(f"sqlite:///{Path(tmp) / DB_FILE}")
        try:
            run_id = create_run(db, problem, cfg)
            threads = variant.partition(":t")[2]
            settings = Settings(home=Path(tmp), llm_threads=int(threads) if threads else None)
            row = asyncio.run(drive(db, run_id, settings, on_engine=on_engine))
        finally:
            db.close()
    wall, cpu = time.perf_counter() - started["wall"], _cpu() - started["cpu"]
    summary = summary_of(row)
    cs = meter.completions
    s = meter.seconds
    prompt_s = sum(c.extra.get("prompt_s", 0.0) for c in cs)
    return {"variant": variant, "seed": seed, "iterations": summary["iterations"],
            "calls": len(cs), "best": summary["best_score"], "initial": summary["initial_score"],
            "wall_s": wall, "cpu_s": cpu, "llm_s": s["llm"], "prompt_s": prompt_s,
            "generation_s": s["llm"] - prompt_s, "parsing_s": s["parsing"],
            "database_s": s["database"], "evaluation_s": s["evaluation"],
            "waiting_s": wall - s["llm"] - s["parsing"] - s["database"],
            "prompt_tokens": sum(c.prompt_tokens for c in cs),
            "cached_tokens": sum(c.extra.get("cached_tokens", 0) for c in cs),
            "completion_tokens": sum(c.completion_tokens for c in cs),
            "cut_at_max_tokens": sum(c.truncated for c in cs),
            "load_avg": os.getloadavg()[0]}


def _cpu() -> float:
    """Returns the CPU seconds of this process and its waited-for children."""
    usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
    return sum(u.ru_utime + u.ru_stime for u in usage)


def table(runs: list[dict[str, Any]], variants: list[str], title: str) -> Table:
    """Returns the per-iteration breakdown, a column per variant, ratios against the first."""
    by = {v: [r for r in runs if r["variant"] == v] for v in variants}

    def per_iteration(v: str, key: str) -> float:
        return fmean(r[key] / max(r["iterations"], 1) for r in by[v])

    def per_call(v: str, key: str) -> float:
        return fmean(r[key] / max(r["calls"], 1) for r in by[v])

    rows: list[tuple[str, Callable[[str], float], str]] = [
        ("wall per iteration (s)", lambda v: per_iteration(v, "wall_s"), "{:.2f}"),
        ("CPU per iteration (s, process + children)", lambda v: per_iteration(v, "cpu_s"),
         "{:.2f}"),
        ("  LLM prompt processing (s)", lambda v: per_iteration(v, "prompt_s"), "{:.2f}"),
        ("  LLM generation (s)", lambda v: per_iteration(v, "generation_s"), "{:.2f}"),
        ("  parsing (ms)", lambda v: 1e3 * per_iteration(v, "parsing_s"), "{:.1f}"),
        ("  database (ms)", lambda v: 1e3 * per_iteration(v, "database_s"), "{:.1f}"),
        ("  waiting, LLM idle (s)", lambda v: per_iteration(v, "waiting_s"), "{:.2f}"),
        ("evaluation, overlapping the LLM (s)", lambda v: per_iteration(v, "evaluation_s"),
         "{:.2f}"),
        ("prompt tokens per call", lambda v: per_call(v, "prompt_tokens"), "{:.0f}"),
        ("  of which from the prompt cache", lambda v: per_call(v, "cached_tokens"), "{:.0f}"),
        ("completion tokens per call", lambda v: per_call(v, "completion_tokens"), "{:.0f}"),
        ("calls cut at max_tokens", lambda v: sum(r["cut_at_max_tokens"] for r in by[v]),
         "{:.0f}"),
        ("best score (mean over seeds)", lambda v: fmean(r["best"] or 0.0 for r in by[v]),
         "{:.4f}"),
        ("load average (1 min, mean)", lambda v: fmean(r["load_avg"] for r in by[v]), "{:.1f}"),
    ]
    t = Table(title=title)
    t.add_column("per iteration / per call")
    for v in variants:
        t.add_column(v, justify="right")
    for v in variants[1:]:
        t.add_column(f"{v} / {variants[0]}", justify="right")
    for label, value, fmt in rows:
        values = [value(v) for v in variants]
        ratios = [f"{x / values[0]:.2f}" if values[0] else "-" for x in values[1:]]
        t.add_row(label, *(fmt.format(x) for x in values), *ratios)
    return t


def main() -> None:
    """Runs every variant on every seed, interleaved, and prints the breakdown."""
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--problem", type=Path, default=PROBLEMS / "quickstart")
    ap.add_argument("--iterations", type=int, default=0,
                    help="iterations per run; 0: the problem's own budget (40 for quickstart)")
    ap.add_argument("--seeds", default="0", help="comma-separated")
    ap.add_argument("--variants", default=",".join(VARIANTS),
                    help="before, closed, after (comma-separated); NAME:tN runs it with N "
                    "llama.cpp threads")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = args.variants.split(",")
    console, runs = Console(), []
    for i, seed in enumerate(seeds):
        for variant in variants if i % 2 == 0 else variants[::-1]:
            console.print(f"{variant}, seed {seed}: {args.problem.name} ...")
            runs.append(one_run(args.problem, variant, seed, args.iterations))
            r = runs[-1]
            console.print(f"  {r['iterations']} iterations in {r['wall_s']:.1f} s wall, "
                          f"{r['cpu_s']:.1f} s CPU, best {r['best']:.4f}, "
                          f"load {r['load_avg']:.1f}")
    console.print(table(runs, variants, f"The embedded loop on {args.problem.name}, seeds "
                        f"{args.seeds}"))
    write_json(out_file("embedded_loop.json"), {"runs": runs}, indent=2)


if __name__ == "__main__":
    main()
