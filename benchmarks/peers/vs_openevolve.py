"""evoforge vs OpenEvolve 0.4.1: same problems, model, endpoint, LLM-call budget and seeds.

Both systems run the same problem folders against the same OpenAI-compatible server (by default a
local llama-cpp-python server on the embedded SmolLM2-135M, started here), through one counting
proxy that meters LLM calls, tokens and LLM busy time for both alike. The best program of every
run is re-scored by `evoforge eval` (our sandbox and the problem's strict verifier). Prints a
per-seed table and a summary with per-evaluation and per-iteration overhead ratios, writes
benchmarks/out/<name>.json and a PNG of best score vs LLM calls and vs wall time.

    .venv/bin/python -m benchmarks.peers.vs_openevolve [--problems quickstart,circle_packing]
        [--seeds 0,1,2] [--calls 20] [--url URL --model M] [--systems evoforge,openevolve]
"""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.harness.curves import last_value
from benchmarks.harness.evoforge import figures, run_on_endpoint, strict_score
from benchmarks.harness.llm_server import endpoint, evoforge_llm, key_value, served_model
from benchmarks.harness.paths import OUT, find_problem
from benchmarks.harness.processes import exit_on_sigterm
from benchmarks.harness.store import read_json, write_json
from benchmarks.harness.venvs import OPENEVOLVE
from benchmarks.peers.openevolve import run_openevolve
from benchmarks.peers.proxy import CountingProxy, summarise
from benchmarks.peers.vs_report import SYSTEMS, markdown, plot_curves, print_tables, summary
from service.problems.load import Problem, load_problem
from service.runs import run_config_for


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Returns the command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="quickstart,circle_packing",
                    help="problem folders (names under problems/ or paths), comma-separated")
    ap.add_argument("--seeds", default="0,1,2", help="seeds, comma-separated, or a range A..B "
                    "(inclusive; >= 20 paired seeds to tell the systems apart)")
    ap.add_argument("--calls", type=int, default=20,
                    help="budget per run in LLM calls (= iterations: one completion each)")
    ap.add_argument("--url", default=None, help="OpenAI-compatible /v1 URL; default: start a "
                    "llama-cpp-python server on the embedded SmolLM2 GGUF")
    ap.add_argument("--model", default=None, help="model name; default: the first the server lists")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context of the started server")
    ap.add_argument("--llm-timeout-s", type=float, default=600, help="per LLM request, both "
                    "systems (a one-slot local server queues requests; 120 s timed out under load)")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature of "
                    "every run (both systems); default: each problem's")
    ap.add_argument("--workers", type=int, default=2, help="evaluations at once, both systems")
    ap.add_argument("--server-field", type=key_value, action="append", default=[],
                    metavar="KEY=VALUE", help="a field the proxy adds to every chat request of "
                    "both systems unless it sets it (repeat_penalty=1.0: llama.cpp's server "
                    "penalises repeats, 1.1, by default); repeatable")
    ap.add_argument("--evoforge-llm", type=key_value, action="append", default=[],
                    metavar="KEY=VALUE", help="an [llm] setting of evoforge's runs only "
                    "(close_code=false: no code guard grammar to the server); repeatable")
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
        args.seeds = seed_list(args.seeds)
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas or a range such as 0..19, "
                 f"got {args.seeds!r}")
    args.problems = [resolve_problem(ap, p) for p in args.problems.split(",") if p]
    args.from_json = [Path(f) for f in args.from_json.split(",") if f]
    missing = [str(f) for f in args.from_json if not f.is_file()]
    if missing:
        ap.error(f"--from-json: no such file {', '.join(missing)}")
    return args


def seed_list(text: str) -> list[int]:
    """Returns the seeds of "0,1,2" or "0..19" (inclusive); raises ValueError on anything else."""
    out: list[int] = []
    for part in (p for p in text.split(",") if p):
        low, sep, high = part.partition("..")
        out += list(range(int(low), int(high) + 1)) if sep else [int(part)]
    return out


def resolve_problem(ap: argparse.ArgumentParser, name: str) -> Path:
    """Returns the folder of a problem given by name (under problems/) or path."""
    folder = find_problem(name)
    if folder is None:
        ap.error(f"problem {name!r}: no folder with an evaluator.py or problem.toml at "
                 f"{name} or problems/{name}; list problems/ for the names")
    return folder


def run_one(system: str, problem: Problem, url: str, model: str, args: argparse.Namespace,
            seed: int, work: Path, initial: float | None) -> dict[str, Any]:
    """Runs one system once on one problem and seed; returns its measurements."""
    if system == "evoforge":
        run = run_on_endpoint(problem.path, url, model, args.calls, seed, args.workers, work,
                              llm=evoforge_llm(args) | dict(args.evoforge_llm),
                              timeout_s=args.run_timeout_s)
        return figures(run)
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
    with CountingProxy(url, defaults=dict(args.server_field)) as proxy:
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
                        "best_reported": last_value(r["curve"])})
                    console.print(f"  best strict {rows[-1]['best_strict']!r} in "
                                  f"{r['wall_s']:.0f} s, {rows[-1]['llm_calls']} calls")
                    # survives an interrupt
                    write_json(args.out / f"{args.name}.partial.json", {"runs": rows})
    return rows


def main(argv: list[str] | None = None) -> None:
    """Runs the comparison and writes the table, JSON and plot."""
    args = parse_args(argv)
    console = Console(width=170)
    exit_on_sigterm()
    if args.from_json:
        rows = [r for f in args.from_json for r in read_json(f)["runs"]]
    else:
        if "openevolve" in args.systems:
            OPENEVOLVE.ensure(console.print)
        with endpoint(args.url, args.n_ctx) as url:
            rows = measure(args, url, console)
    summ = summary(rows)
    print_tables(rows, summ, console)
    write_json(args.out / f"{args.name}.json", {"runs": rows, "summary": summ})
    (args.out / f"{args.name}.md").write_text(markdown(rows, summ))
    console.print(f"json: {args.out / f'{args.name}.json'}  "
                  f"markdown: {args.out / f'{args.name}.md'}")
    if plot_curves(rows, args.out / f"{args.name}.png"):
        console.print(f"plot: {args.out / f'{args.name}.png'}")


if __name__ == "__main__":
    main()
