"""evoforge vs OpenEvolve 0.4.1: same problems, model, endpoint, LLM-call budget and seeds.

Both systems run the same problem folders against the same OpenAI-compatible server (by default a
local llama-cpp-python server on the embedded SmolLM2-135M, started here), through one counting
proxy that meters LLM calls, tokens and LLM busy time for both alike. The best program of every
run is re-scored by `evoforge eval` (our sandbox and the problem's strict verifier). Prints a
per-seed table and a summary with per-evaluation and per-iteration overhead ratios, writes
benchmarks/out/<name>.json and a PNG of best score vs LLM calls and vs wall time.

    .venv/bin/python benchmarks/vs_openevolve.py [--problems quickstart,circle_packing]
        [--seeds 0,1,2] [--calls 20] [--url URL --model M] [--systems evoforge,openevolve]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import statistics
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _vs_common import (
    OUT,
    ROOT,
    evoforge_llm,
    exit_on_sigterm,
    llama_server,
    served_model,
    strict_score,
)
from _vs_evoforge import run_evoforge
from _vs_openevolve import peer_python, run_openevolve
from _vs_plot import plot_curves
from _vs_proxy import CountingProxy, summarise
from rich.console import Console
from rich.table import Table

from service.problems.load import Problem, load_problem
from service.runs import run_config_for

SYSTEMS = ("evoforge", "openevolve")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Returns the command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="quickstart,circle_packing",
                    help="problem folders (names under problems/ or paths), comma-separated")
    ap.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated (>= 3 for the docs)")
    ap.add_argument("--calls", type=int, default=20,
                    help="budget per run in LLM calls (= iterations: one completion each)")
    ap.add_argument("--url", default=None, help="OpenAI-compatible /v1 URL; default: start a "
                    "llama-cpp-python server on the embedded SmolLM2 GGUF")
    ap.add_argument("--model", default=None, help="model name; default: the first the server lists")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context of the started server")
    ap.add_argument("--llm-timeout-s", type=float, default=600, help="per LLM request, both "
                    "systems (a one-slot local server queues requests; 120 s timed out under load)")
    ap.add_argument("--workers", type=int, default=2, help="evaluations at once, both systems")
    ap.add_argument("--systems", default=",".join(SYSTEMS), help="evoforge,openevolve or one")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the outputs")
    ap.add_argument("--name", default="vs_openevolve", help="output file stem under benchmarks/out")
    ap.add_argument("--from-json", default="", help="no runs: merge these earlier outputs "
                    "(comma-separated JSON files) into one table, JSON and plot")
    ap.add_argument("--run-timeout-s", type=float, default=3600, help="kill one run after this")
    args = ap.parse_args(argv)
    args.systems = [s for s in args.systems.split(",") if s]
    unknown = set(args.systems) - set(SYSTEMS)
    if unknown or not args.systems:
        ap.error(f"--systems: unknown {sorted(unknown)}; choose from {', '.join(SYSTEMS)}")
    if args.calls < 1:
        ap.error("--calls must be at least 1")
    try:
        args.seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got {args.seeds!r}")
    args.problems = [resolve_problem(ap, p) for p in args.problems.split(",") if p]
    args.from_json = [Path(f) for f in args.from_json.split(",") if f]
    missing = [str(f) for f in args.from_json if not f.is_file()]
    if missing:
        ap.error(f"--from-json: no such file {', '.join(missing)}")
    return args


def resolve_problem(ap: argparse.ArgumentParser, name: str) -> Path:
    """Returns the folder of a problem given by name (under problems/) or path."""
    for candidate in (Path(name), ROOT / "problems" / name):
        if (candidate / "evaluator.py").exists() or (candidate / "problem.toml").exists():
            return candidate.resolve()
    return ap.error(f"problem {name!r}: no folder with an evaluator.py or problem.toml at "
                    f"{name} or problems/{name}; list problems/ for the names")


def run_one(system: str, problem: Problem, url: str, model: str, args: argparse.Namespace,
            seed: int, work: Path, initial: float | None) -> dict[str, Any]:
    """Runs one system once on one problem and seed; returns its measurements."""
    maximize = problem.direction == "maximize"
    if system == "evoforge":
        return run_evoforge(problem.path, url, model, args.calls, seed, args.workers, work,
                            maximize, llm=evoforge_llm(args),
                            timeout_s=args.run_timeout_s)
    cfg = run_config_for(problem, None, {"llm": {"backend": "openai", "url": url, "model": model,
                                                 **evoforge_llm(args)}})
    return run_openevolve(problem, cfg, url, model, args.calls, seed, args.workers, work,
                          initial=initial, timeout_s=args.run_timeout_s)


def measure(args: argparse.Namespace, url: str, console: Console) -> list[dict[str, Any]]:
    """Runs every problem x seed x system through the counting proxy; returns one row per run."""
    model = args.model or served_model(url)
    rows: list[dict[str, Any]] = []
    runs_dir = args.out / f"{args.name}-runs"  # every run's files, kept for inspection
    shutil.rmtree(runs_dir, ignore_errors=True)
    args.out.mkdir(parents=True, exist_ok=True)
    with CountingProxy(url) as proxy:
        for path in args.problems:
            problem = load_problem(path)
            initial = strict_score(problem.path, problem.initial_code)
            for seed in args.seeds:
                order = args.systems if seed % 2 == 0 else args.systems[::-1]  # cancel drift
                for system in order:
                    tag = f"{system}-{problem.name}-s{seed}"
                    console.print(f"{tag}: {args.calls} LLM calls on {model} ...")
                    r = run_one(system, problem, proxy.url(tag), model, args, seed,
                                runs_dir / tag, initial["score"])
                    code = r.pop("best_code")
                    for key in ("llm_calls", "tokens"):  # the system's own count, kept beside
                        if key in r:                     # the proxy's
                            r[f"own_{key}"] = r.pop(key)
                    strict = strict_score(problem.path, code) if code else \
                        {"status": "none", "score": None}
                    rows.append(r | summarise(proxy.meter.of(tag)) | {
                        "system": system, "problem": problem.name, "seed": seed, "model": model,
                        "direction": problem.direction, "best_known": problem.best_known,
                        "initial_strict": initial["score"], "best_strict": strict["score"],
                        "strict_status": strict["status"], "strict_error": strict.get("error"),
                        "best_reported": _last(r["curve"])})
                    console.print(f"  best strict {rows[-1]['best_strict']!r} in "
                                  f"{r['wall_s']:.0f} s, {rows[-1]['llm_calls']} calls")
                    partial = args.out / f"{args.name}.partial.json"  # survives an interrupt
                    partial.write_text(json.dumps({"runs": rows}, indent=1))
    return rows


def _last(curve: list[float | None]) -> float | None:
    return next((v for v in reversed(curve) if v is not None), None)


def per_iteration_ms(r: dict[str, Any]) -> float | None:
    """Returns (wall time - LLM busy time) / iterations in ms: everything but the LLM."""
    iters = max(r.get("iterations") or 0, 1)
    return 1e3 * (r["wall_s"] - r["llm_busy_s"]) / iters


def summary(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Returns one row per (problem, system): means over seeds and ratios to the peer."""
    out: list[dict[str, Any]] = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        group = {s: [r for r in rows if r["problem"] == problem and r["system"] == s]
                 for s in SYSTEMS}
        for system, runs in group.items():
            if not runs:
                continue
            strict = [r["best_strict"] for r in runs if r["best_strict"] is not None]
            out.append({
                "problem": problem, "system": system, "seeds": len(runs),
                "best_strict_mean": statistics.fmean(strict) if strict else None,
                "best_strict_sd": statistics.stdev(strict) if len(strict) > 1 else 0.0,
                "best_strict_max": (max if runs[0]["direction"] == "maximize" else min)(strict)
                if strict else None,
                "initial_strict": runs[0]["initial_strict"],
                "improved": sum(_improved(r) for r in runs),
                **{k: statistics.fmean(r[k] for r in runs) for k in
                   ("llm_calls", "tokens", "wall_s", "llm_busy_s", "distinct_completions")},
                "eval_s": _mean(r["eval_s_mean"] for r in runs),
                "iter_overhead_ms": _mean(per_iteration_ms(r) for r in runs),
            })
    for row in out:
        peer = next((o for o in out if o["problem"] == row["problem"]
                     and o["system"] == "openevolve"), None)
        for key in ("eval_s", "iter_overhead_ms", "wall_s", "tokens"):
            ok = peer and row[key] is not None and peer[key]
            row[f"{key}_ratio"] = row[key] / peer[key] if ok else None
    return out


def _improved(r: dict[str, Any]) -> bool:
    a, b = r["best_strict"], r["initial_strict"]
    if a is None or b is None:
        return False
    return a > b if r["direction"] == "maximize" else a < b


def _mean(values: Any) -> float | None:
    vals = [v for v in values if v is not None]
    return statistics.fmean(vals) if vals else None


def _f(v: float | None, fmt: str = ".4f") -> str:
    return "" if v is None else format(v, fmt)


def print_tables(rows: list[dict[str, Any]], summ: list[dict[str, Any]], console: Console) -> None:
    """Prints the per-run table and the summary table."""
    t = Table(title="per run (LLM calls and tokens counted at the proxy; strict = `evoforge eval`)")
    for col in ("problem", "system", "seed", "initial", "best reported", "best strict",
                "LLM calls", "tokens", "distinct", "wall s", "LLM busy s", "eval s",
                "iter ms"):
        t.add_column(col, justify="right")
    for r in rows:
        t.add_row(r["problem"], r["system"], str(r["seed"]), _f(r["initial_strict"]),
                  _f(r["best_reported"]), _f(r["best_strict"]) or r["strict_status"],
                  str(r["llm_calls"]), str(r["tokens"]), str(r["distinct_completions"]),
                  _f(r["wall_s"], ".0f"), _f(r["llm_busy_s"], ".0f"), _f(r["eval_s_mean"], ".3f"),
                  _f(per_iteration_ms(r), ".0f"))
    console.print(t)
    s = Table(title="summary: means over seeds; ratio = evoforge ÷ openevolve (< 1: evoforge less)")
    for col in ("problem", "system", "seeds", "best strict", "± sd", "best", "improved",
                "LLM calls", "tokens", "wall s", "eval s", "÷", "iter ms", "÷"):
        s.add_column(col, justify="right")
    for r in summ:
        s.add_row(r["problem"], r["system"], str(r["seeds"]), _f(r["best_strict_mean"]),
                  _f(r["best_strict_sd"]), _f(r["best_strict_max"]),
                  f"{r['improved']}/{r['seeds']}", _f(r["llm_calls"], ".1f"),
                  _f(r["tokens"], ".0f"), _f(r["wall_s"], ".0f"), _f(r["eval_s"], ".3f"),
                  _f(r["eval_s_ratio"], ".2f"), _f(r["iter_overhead_ms"], ".0f"),
                  _f(r["iter_overhead_ms_ratio"], ".2f"))
    console.print(s)


def markdown(rows: list[dict[str, Any]], summ: list[dict[str, Any]]) -> str:
    """Returns the per-run and summary tables as Markdown (for docs/benchmarks.md)."""
    head = ["problem", "system", "seed", "initial", "best strict", "LLM calls", "tokens",
            "distinct", "wall s", "LLM busy s", "eval s", "iter ms"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        lines.append("| " + " | ".join([
            r["problem"], r["system"], str(r["seed"]), _f(r["initial_strict"]),
            _f(r["best_strict"]) or r["strict_status"], str(r["llm_calls"]), str(r["tokens"]),
            str(r["distinct_completions"]), _f(r["wall_s"], ".0f"), _f(r["llm_busy_s"], ".0f"),
            _f(r["eval_s_mean"], ".3f"), _f(per_iteration_ms(r), ".0f")]) + " |")
    head = ["problem", "system", "seeds", "best strict (mean ± sd)", "improved", "tokens",
            "wall s", "eval s", "÷ peer", "iter ms", "÷ peer"]
    lines += ["", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in summ:
        lines.append("| " + " | ".join([
            r["problem"], r["system"], str(r["seeds"]),
            f"{_f(r['best_strict_mean'])} ± {_f(r['best_strict_sd'])}",
            f"{r['improved']}/{r['seeds']}", _f(r["tokens"], ".0f"), _f(r["wall_s"], ".0f"),
            _f(r["eval_s"], ".3f"), _f(r["eval_s_ratio"], ".2f"), _f(r["iter_overhead_ms"], ".0f"),
            _f(r["iter_overhead_ms_ratio"], ".2f")]) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Runs the comparison and writes the table, JSON and plot."""
    args = parse_args(argv)
    console = Console(width=170)
    exit_on_sigterm()
    if args.from_json:
        rows = [r for f in args.from_json for r in json.loads(f.read_text())["runs"]]
    else:
        if "openevolve" in args.systems:
            peer_python(console.print)
        server = contextlib.nullcontext(args.url) if args.url else llama_server(args.n_ctx)
        with server as url:
            rows = measure(args, url, console)
    summ = summary(rows)
    print_tables(rows, summ, console)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps({"runs": rows, "summary": summ}, indent=1))
    (args.out / f"{args.name}.md").write_text(markdown(rows, summ))
    console.print(f"json: {args.out / f'{args.name}.json'}  markdown: {args.out / f'{args.name}.md'}")
    if plot_curves(rows, args.out / f"{args.name}.png"):
        console.print(f"plot: {args.out / f'{args.name}.png'}")


if __name__ == "__main__":
    main()
