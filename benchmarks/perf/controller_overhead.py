"""Controller overhead per iteration (LLM and evaluation excluded) at 10^3..10^5 stored programs.

Target (issue): <= 5 ms per iteration at 10^5 stored programs, on SQLite and PostgreSQL.

For each size N and backend, a run is pre-filled with N programs (with their LLM samples and
evaluations) by bulk inserts, then the real Engine drives `--iterations` more iterations with an
instant scripted LLM (a new full rewrite each time) and an instant executor (a scored result at
once, no subprocess). Reported: restore (engine start until its first LLM request: lease, archive
rebuilt from N rows, hash index) and the per-iteration overhead = (loop wall time - LLM time -
evaluation time) / iterations, with p50 / p95 of the time between successive LLM requests.
The peer, OpenEvolve 0.4.1 in its own venv, runs the same sizes in the same command
(benchmarks.peers.openevolve_controller). `--profile` writes cProfile stats of restore and loop
to benchmarks/out/.

    .venv/bin/python -m benchmarks.perf.controller_overhead [--sizes 1000,10000,100000] [--no-peer]
        [--files 1,20]   # a single file against a 20-file folder program, side by side

`--metrics both` measures every case with Prometheus metrics off and on (as `evoforge controller
--metrics-port` counts them), alternated `--repeat` times, and prints the overhead of metrics
(benchmarks.perf.metrics_cost); the peer is skipped then.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from benchmarks.harness.store import out_file, write_json
from benchmarks.harness.timing import mean_p50_p95_ms
from benchmarks.peers.launch import controller_timings
from benchmarks.perf import synthetic
from benchmarks.perf.databases import PG_ADMIN, backend_url
from benchmarks.perf.fill import populate, problem_folder
from benchmarks.perf.instant import InstantExecutor, InstantLLM, SqlMeter
from benchmarks.perf.metrics_cost import (
    iteration_events_us,
    modes_in_turn,
    render_overhead,
    set_metrics,
)
from evaluators import tree
from service.config import build_run_config
from service.db import Database
from service.db.models import LLMSampleRow, ProgramRow
from service.evolution.engine import Engine
from service.evolution.prompts import ProgramView, PromptContext, build_prompt
from service.problems.direction import Direction
from service.problems.load import load_problem
from service.runs import create_run

TARGET_MS, TARGET_N = 5.0, 100_000


# --- measuring the engine --------------------------------------------------------------------


def measure_engine(url: str, backend: str, n: int, iterations: int, seed: int, profile: bool,
                   in_flight: int, files: int = 1) -> dict[str, Any]:
    """Returns restore time and per-iteration overhead of the Engine on a run of n programs of
    `files` files each."""
    with tempfile.TemporaryDirectory() as tmp:
        problem = load_problem(problem_folder(Path(tmp) / "spread", files))
        cfg = build_run_config(problem.run_defaults, {
            "seed": seed, "llm": {"backend": "scripted", "max_tokens": 1024},
            "budget": {"iterations": n - 1 + iterations}, "evaluation": {"in_flight": in_flight}})
        db = Database(url)
        try:
            run_id = create_run(db, problem, cfg)
            populate_s = populate(db, run_id, n, cfg.search.num_islands, seed, files)
            row = _drive(db, run_id, problem, cfg, backend, n, seed, profile, in_flight)
            return row | {"populate_s": populate_s, "files": files}
        finally:
            db.close()


def _drive(db: Database, run_id: int, problem: Any, cfg: Any, backend: str, n: int, seed: int,
           profile: bool, in_flight: int) -> dict[str, Any]:
    meter = SqlMeter(db.engine)
    profs = [cProfile.Profile(), cProfile.Profile()] if profile else []
    marks: dict[str, Any] = {}

    def first_request(t: float) -> None:
        marks.update(first=t, sql=(meter.count, meter.seconds, meter.commits),
                     cpu_first=time.process_time())
        if profs:
            profs[0].disable()
            profs[1].enable()

    llm, executor = InstantLLM(first_request, in_flight), InstantExecutor(seed)
    engine = Engine(db, run_id, problem, cfg, llm, executor)

    async def go() -> None:
        if profs:
            profs[0].enable()
        marks["start"] = time.perf_counter()
        await engine.run()
        marks["end"], marks["cpu_end"] = time.perf_counter(), time.process_time()
        if profs:
            profs[1].disable()

    asyncio.run(go())
    for prof, phase in zip(profs, ("restore", "loop"), strict=False):  # profs: [] unprofiled
        prof.dump_stats(out_file(f"profile-{backend}-{n}-{phase}.pstats"))
    with db.session() as s:
        new = s.scalar(select(func.count()).select_from(ProgramRow).where(
            ProgramRow.run_id == run_id, ProgramRow.iteration >= n, ProgramRow.kind == "mutation",
            ProgramRow.status == "ok"))
        prompt_tokens = s.scalar(select(func.avg(LLMSampleRow.prompt_tokens)).where(
            LLMSampleRow.run_id == run_id, LLMSampleRow.iteration >= n))
    sql = [now - then for now, then in zip((meter.count, meter.seconds, meter.commits),
                                           marks["sql"], strict=True)]
    return _row(marks, llm, executor, sql) | {
        "backend": f"evoforge-{backend}", "n": n, "new_scored_children": new,
        "rejected": engine.rejected, "duplicates": engine.duplicates, "profiled": profile,
        "in_flight": in_flight, "prompt_tokens": float(prompt_tokens or 0)}


def _row(marks: dict[str, Any], llm: InstantLLM, executor: InstantExecutor,
         sql: list[float]) -> dict[str, Any]:
    k = max(1, len(llm.starts))
    loop_s = marks["end"] - marks["first"]
    gaps = [b - a for a, b in zip(llm.starts, llm.starts[1:], strict=False)]
    overhead = mean_p50_p95_ms(gaps) | {"mean": 1e3 * (loop_s - llm.spent - executor.spent) / k}
    return {"iterations": len(llm.starts), "restore_s": marks["first"] - marks["start"],
            "loop_s": loop_s, "llm_s": llm.spent, "eval_s": executor.spent,
            "cpu_ms_per_iter": 1e3 * (marks["cpu_end"] - marks["cpu_first"]) / k,
            "overhead_ms": overhead, "sql_per_iter": sql[0] / k,
            "sql_ms_per_iter": 1e3 * sql[1] / k, "commits_per_iter": sql[2] / k}


def prompt_tokens(files: int) -> dict[str, int]:
    """Returns the tokens (chars / 4) of the first prompt of the synthetic problem of `files`
    files, as a diff prompt (large models: support files as signatures) and as a rewrite prompt
    (small models: the target file's block and the other files' evolving code)."""
    code = tree.join(synthetic.files(0, files)) if files > 1 else synthetic.program(0)
    out = {}
    for fmt in ("diff", "rewrite"):
        ctx = PromptContext(problem_name="spread", description="Spread 16 points.",
                            score_metric="combined_score", direction=Direction.MAXIMIZE,
                            fmt=fmt, parent=ProgramView(code, 0.5),  # type: ignore[arg-type]
                            target="main.py" if fmt == "rewrite" and files > 1 else None)
        out[fmt] = sum(len(m.content) // 4 for m in build_prompt(ctx, lambda t: len(t) // 4,
                                                                  10**9))
    return out


# --- the peer ---------------------------------------------------------------------------------


def measure_peer(console: Console, sizes: list[int], iterations: int,
                 budget_s: float) -> list[dict[str, Any]]:
    """Returns the peer's rows: core bookkeeping, and with its per-iteration snapshot added."""
    rows = []
    for r in controller_timings(sizes, iterations, budget_s, console.print):
        core = r["core_ms"]
        extra = r["snapshot_ms"]["mean"] + r["pickle_ms"]["mean"]
        base = {"n": r["n"], "restore_s": r["setup_s"], "iterations": r["iterations"], "peer": r}
        rows.append(base | {"backend": "openevolve-memory", "overhead_ms": core})
        total = {"mean": core["mean"] + extra, "p50": None, "p95": None}
        rows.append(base | {"backend": "openevolve-parallel", "overhead_ms": total})
    return rows


# --- report -----------------------------------------------------------------------------------


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:.2f}"


def render(rows: list[dict[str, Any]], console: Console) -> None:
    """Prints the table: backend x N, restore, overhead per iteration, ratio against the peer."""
    peer = {r["n"]: r["overhead_ms"]["mean"] for r in rows if r["backend"] == "openevolve-memory"}
    table = Table(title=f"Controller overhead per iteration (LLM and evaluation excluded); "
                        f"target <= {TARGET_MS:g} ms at N = {TARGET_N:,}")
    for col in ("backend", "N", "files", "restore s", "iters", "mean ms", "p50 ms", "p95 ms",
                "SQL/iter", "prompt tok", "÷ openevolve", "target"):
        table.add_column(col, justify="left" if col == "backend" else "right")
    for r in sorted(rows, key=lambda r: (r["n"], r.get("files", 1), r["backend"])):
        o = r["overhead_ms"]
        one = r.get("files", 1) == 1
        ratio = f"{o['mean'] / peer[r['n']]:.2f}×" if one and peer.get(r["n"]) else "-"
        target = ""
        if r["backend"].startswith("evoforge") and r["n"] >= TARGET_N and one:
            target = "[green]met[/]" if o["mean"] <= TARGET_MS else "[red]missed[/]"
        table.add_row(r["backend"], f"{r['n']:,}", str(r.get("files", 1)),
                      f"{r['restore_s']:.2f}", str(r["iterations"]),
                      _ms(o["mean"]), _ms(o["p50"]), _ms(o["p95"]),
                      f"{r['sql_per_iter']:.1f}" if "sql_per_iter" in r else "-",
                      f"{r['prompt_tokens']:.0f}" if "prompt_tokens" in r else "-", ratio, target)
    console.print(table)
    console.print("restore: evoforge = engine start to its first LLM request (lease, archive and "
                  "hash index rebuilt from N rows); openevolve = adding N programs to its "
                  "in-memory ProgramDatabase. p50/p95 (evoforge) = time between successive LLM "
                  "requests. openevolve-parallel adds the whole-database snapshot + pickle its "
                  "process-parallel controller makes for every iteration (mean only). "
                  "÷ openevolve < 1 means evoforge is faster (single-file rows: OpenEvolve "
                  "evolves one file). files > 1: a folder program, main.py with the EVOLVE-BLOCK "
                  "and support modules shown as signatures; prompt tok = mean prompt tokens "
                  "(chars / 4). 2-core machine shared with other work: expect ±30 % noise.")


def main() -> None:
    """Runs every backend and size, then the peer, and prints and stores the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,10000,100000", help="stored programs, comma-separated")
    ap.add_argument("--iterations", type=int, default=200, help="timed iterations per run")
    ap.add_argument("--backends", default="sqlite,postgres", help="sqlite, postgres or both")
    ap.add_argument("--pg-url", default=PG_ADMIN,
                    help="PostgreSQL admin URL; a throwaway database is created next to it")
    ap.add_argument("--no-peer", action="store_true", help="skip OpenEvolve")
    ap.add_argument("--peer-budget-s", type=float, default=60.0,
                    help="seconds of timed peer iterations per size at most")
    ap.add_argument("--profile", action="store_true",
                    help="write cProfile stats of restore and loop to benchmarks/out/")
    ap.add_argument("--in-flight", type=int, default=1,
                    help="candidates in flight and LLM concurrency; 1 makes each gap between "
                    "LLM requests exactly one iteration (p50/p95)")
    ap.add_argument("--files", default="1",
                    help="files per program, comma-separated (e.g. 1,20: a single file against a "
                    "20-file folder program, side by side)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--metrics", choices=("off", "on", "both"), default="off",
                    help="count Prometheus metrics in the engine; both: off and on alternated, "
                    "with the overhead")
    ap.add_argument("--repeat", type=int, default=5, help="--metrics both: runs of each mode")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if unknown := set(backends) - {"sqlite", "postgres"}:
        raise SystemExit(f"--backends: unknown {sorted(unknown)}; use sqlite and/or postgres")
    console = Console(width=150)
    if args.metrics == "both":
        metrics_overhead(args, sizes, backends, console)
        return
    set_metrics(args.metrics == "on")
    rows: list[dict[str, Any]] = []
    files = [int(f) for f in args.files.split(",")]
    for n in sizes:
        for backend in backends:
            for count in files:
                with console.status(f"evoforge-{backend}, N = {n:,}, {count} file(s)..."), \
                        backend_url(backend, args.pg_url) as url:
                    row = measure_engine(url, backend, n, args.iterations, args.seed,
                                         args.profile, args.in_flight, count)
                rows.append(row)
                console.print(f"{row['backend']:18} N={n:>7,} files={count:<3} populate "
                              f"{row['populate_s']:6.1f} s  restore {row['restore_s']:6.2f} s  "
                              f"{row['overhead_ms']['mean']:7.2f} ms/iter  "
                              f"({row['new_scored_children']} new children)")
    if not args.no_peer:
        with console.status("openevolve 0.4.1..."):
            rows += measure_peer(console, sizes, args.iterations, args.peer_budget_s)
    render(rows, console)
    sizes_by_files = {count: prompt_tokens(count) for count in files}
    for count, tokens in sizes_by_files.items():
        console.print(f"first prompt, {count} file(s): {tokens['diff']} tokens as a diff prompt, "
                      f"{tokens['rewrite']} as a rewrite prompt (chars / 4)")
    out = write_json(out_file("controller_overhead.json"),
                     {"args": vars(args), "rows": rows, "prompt_tokens": sizes_by_files})
    console.print(f"written: {out}")


def metrics_overhead(args: argparse.Namespace, sizes: list[int], backends: list[str],
                     console: Console) -> None:
    """Measures each case with metrics off and on, alternated; prints and stores the overhead."""
    rows = []
    for n in sizes:
        for backend in backends:
            row: dict[str, Any] = {"case": f"evoforge-{backend}, N = {n:,}", "off": [], "on": []}
            with backend_url(backend, args.pg_url) as url:  # a warm-up run, not counted
                measure_engine(url, backend, n, args.iterations, args.seed, False, args.in_flight)
            for i in range(args.repeat):
                for mode in modes_in_turn(i):
                    set_metrics(mode == "on")
                    with console.status(f"{row['case']}, metrics {mode} ({i + 1}/{args.repeat})"), \
                            backend_url(backend, args.pg_url) as url:
                        got = measure_engine(url, backend, n, args.iterations, args.seed, False,
                                             args.in_flight)
                    row[mode].append(got["overhead_ms"]["mean"])
            rows.append(row)
    render_overhead("Controller overhead per iteration (ms), Prometheus metrics off vs on", "ms",
                    rows, False, console)
    cost = iteration_events_us()
    console.print(f"the metric events of one iteration, timed directly: {cost:.1f} µs")
    out = write_json(out_file("controller_overhead_metrics.json"),
                     {"args": vars(args), "rows": rows, "events_us_per_iteration": cost})
    console.print(f"written: {out}")


if __name__ == "__main__":
    main()
