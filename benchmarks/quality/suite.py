"""evoforge on every problem of the suite, fixed budget: best strict score and gap to best known.

Each problem x seed is a real `evoforge run --llm openai` against one OpenAI-compatible server (by
default a llama-cpp-python server on the embedded SmolLM2-135M, started here). The best program
of each run is re-scored by `evoforge eval` (sandbox + the problem's strict verifier). Prints a
table and writes benchmarks/out/<name>.json and <name>.md. Resumable: a (problem, seed) already
saved in <name>.json or <name>.partial.json with the same budget and model is not run again
(--fresh runs everything).

    .venv/bin/python -m benchmarks.quality.suite [--problems all | a,b,c] [--calls 20] [--seeds 0]
        [--url URL --model M | --embedded] [--llm KEY=VALUE ...] [--fresh]

--embedded runs each evoforge on its own in-process llamacpp backend instead (what `evoforge run`
does by default, the code guard included); --llm sets more [llm] keys of every run. Runs on the
server started here send llm.extra_body = {repeat_penalty = 1.0} (llama.cpp's server penalises
repeated tokens by default, which costs code its brackets; --llm extra_body={} sends nothing).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from rich.console import Console

from benchmarks.harness.evoforge import figures, llm_table, run_cli, run_on_endpoint, strict_score
from benchmarks.harness.llm_server import endpoint, evoforge_llm, key_value, served_model
from benchmarks.harness.paths import OUT, PROBLEMS, all_problems, find_problem
from benchmarks.harness.processes import exit_on_sigterm
from benchmarks.harness.store import read_json, write_json
from benchmarks.quality.suite_report import write_outputs
from service.llm.models import default_model_path
from service.problems.load import Problem, ProblemError, load_problem

EMBEDDED = "embedded:"  # the model name of --embedded rows: this prefix and the GGUF's stem


def suite_problems(spec: str) -> list[Path]:
    """Returns the problem folders: every folder under problems/ with an evaluator, or a list."""
    if spec == "all":
        found = all_problems()
        if not found:
            raise SystemExit(f"no problem folders (evaluator.py or problem.toml) under {PROBLEMS}")
        return found
    folders = []
    for name in (n for n in spec.split(",") if n):
        folder = find_problem(name)
        if folder is None:
            raise SystemExit(f"--problems: {name!r} is not a problem folder (no evaluator.py or "
                             f"problem.toml at {name} or problems/{name}); list problems/ for "
                             "the names")
        folders.append(folder)
    return folders


def gap(best: float | None, problem: Problem) -> float | None:
    """Returns the relative gap to the best known value (0 = reached, < 0 = beaten)."""
    if best is None or problem.best_known in (None, 0):
        return None
    known = problem.best_known
    diff = known - best if problem.direction == "maximize" else best - known
    return diff / abs(known)


def run_problem(path: Path, url: str, model: str, args: argparse.Namespace, seed: int,
                work: Path) -> dict[str, Any]:
    """Runs evoforge on one problem and seed; returns the results row."""
    problem = load_problem(path)
    initial = strict_score(problem.path, problem.initial_code)
    # the server started here is llama.cpp's, whose repeat penalty (1.1 unless a request says
    # otherwise) costs code its brackets: runs on it send 1.0, as docs/benchmarks.md advises
    own = {} if args.url or args.embedded else {"extra_body": {"repeat_penalty": 1.0}}
    llm = evoforge_llm(args) | own | dict(args.llm)
    if args.embedded:
        run = run_cli(problem.path, work, seed=seed, iterations=args.calls, config=llm_table(llm),
                      options=["--workers", str(args.workers)], timeout_s=args.run_timeout_s)
    else:
        run = run_on_endpoint(problem.path, url, model, args.calls, seed, args.workers, work,
                              llm=llm, timeout_s=args.run_timeout_s)
    r = figures(run)
    code = r.pop("best_code")
    outcomes = run.outcome_counts()
    strict = strict_score(problem.path, code) if code else {"status": "none", "score": None}
    tier = "re-verified strict" if strict["status"] == "ok" else f"rejected: {strict.get('error')}"
    return {"problem": path.name, "seed": seed, "direction": problem.direction,
            "initial": initial["score"], "best_reported": r["best_score"],
            "best_strict": strict["score"], "tier": tier, "best_known": problem.best_known,
            "best_known_source": problem.best_known_source,
            "gap": gap(strict["score"], problem), "llm_calls": r["llm_calls"],
            "tokens": r["tokens"], "wall_s": r["wall_s"], "iterations": r["iterations"],
            "evaluations": r["evaluations"], "failed": r["failed"], "curve": r["curve"],
            "outcomes": outcomes, "calls": args.calls, "model": model,
            "finished_at": datetime.now(UTC).isoformat(), "load_avg": os.getloadavg()}


def saved_rows(out: Path, name: str, calls: int, model: str) -> dict[tuple[str, int], dict]:
    """Returns the finished rows of an earlier invocation with the same budget and model."""
    rows: dict[tuple[str, int], dict] = {}
    for f in (out / f"{name}.json", out / f"{name}.partial.json"):
        for r in read_json(f, []):
            if "error" not in r and r.get("calls") == calls and r.get("model") == model:
                rows[(r["problem"], r["seed"])] = r
    return rows


def parse_args(argv: list[str] | None) -> tuple[argparse.ArgumentParser, argparse.Namespace]:
    """Returns the parser and the command-line arguments."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="all", help="'all' (every folder under problems/) "
                    "or names / paths, comma-separated")
    ap.add_argument("--calls", type=int, default=20, help="budget per run in LLM calls")
    ap.add_argument("--seeds", default="0", help="seeds, comma-separated")
    ap.add_argument("--url", default=None, help="OpenAI-compatible /v1 URL; default: start a "
                    "llama-cpp-python server on the embedded SmolLM2 GGUF")
    ap.add_argument("--model", default=None, help="model name; default: the first the server lists")
    ap.add_argument("--embedded", action="store_true", help="no server: each run uses its own "
                    "in-process llamacpp backend on the embedded SmolLM2 (evoforge's default)")
    ap.add_argument("--llm", type=key_value, action="append", default=[], metavar="KEY=VALUE",
                    help="one more [llm] key of every run, VALUE in JSON (close_code=false); "
                    "repeatable")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context of the started server")
    ap.add_argument("--llm-timeout-s", type=float, default=600, help="per LLM request, both "
                    "systems (a one-slot local server queues requests; 120 s timed out under load)")
    ap.add_argument("--temperature", type=float, default=None, help="sampling temperature of "
                    "every run; default: each problem's")
    ap.add_argument("--workers", type=int, default=2, help="evaluations at once")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the outputs")
    ap.add_argument("--name", default="suite", help="output file stem under benchmarks/out")
    ap.add_argument("--fresh", action="store_true", help="ignore saved results, run everything")
    ap.add_argument("--run-timeout-s", type=float, default=3600, help="kill one run after this")
    ap.add_argument("--report", action="store_true", help="run nothing: rebuild the tables and "
                    "the plot from <name>.json")
    ap.add_argument("--merge", default="", help="with --report: also the rows of these output "
                    "stems (e.g. a second invocation's --name), comma-separated; the first wins")
    return ap, ap.parse_args(argv)


def saved_report(ap: argparse.ArgumentParser, args: argparse.Namespace) -> list[dict[str, Any]]:
    """Returns the rows of <name>.json and the --merge stems (the first wins), in problem order."""
    rows: list[dict[str, Any]] = []
    for stem in [args.name, *(n for n in args.merge.split(",") if n)]:
        if not (saved := args.out / f"{stem}.json").exists():
            ap.error(f"--report: no {saved}")
        have = {(r["problem"], r["seed"]) for r in rows}
        rows += [r for r in read_json(saved) if (r["problem"], r["seed"]) not in have]
    listed = [] if args.problems == "all" else [Path(n).name for n in args.problems.split(",")]
    order = {p: i for i, p in enumerate(dict.fromkeys(listed + [r["problem"] for r in rows]))}
    return sorted(rows, key=lambda r: (order[r["problem"]], r["seed"]))


def run_suite(args: argparse.Namespace, seeds: list[int], folders: list[Path],
              console: Console) -> list[dict[str, Any]]:
    """Runs every (seed, problem) not saved yet; returns these rows and the other saved ones."""
    rows: list[dict[str, Any]] = []
    server = contextlib.nullcontext("") if args.embedded else endpoint(args.url, args.n_ctx)
    with server as url, tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        model = (EMBEDDED + default_model_path().stem if args.embedded
                 else args.model or served_model(url))
        saved = {} if args.fresh else saved_rows(args.out, args.name, args.calls, model)
        for seed in seeds:  # seed-major: a cut-short invocation still covers every problem
            for path in folders:
                if (kept := saved.get((path.name, seed))) is not None:
                    console.print(f"{path.name} seed {seed}: saved, skipped")
                    rows.append(kept)
                    continue
                console.print(f"{path.name} seed {seed}: {args.calls} LLM calls on {model} ...")
                try:
                    rows.append(run_problem(path, url, model, args, seed,
                                            Path(tmp) / f"{path.name}-s{seed}"))
                except (RuntimeError, ProblemError) as exc:  # one broken problem must not hide
                    console.print(f"[red]{path.name} seed {seed} failed:[/] {exc}")  # the others
                    rows.append({"problem": path.name, "seed": seed, "error": str(exc)})
                # what is done survives an interrupt
                write_json(args.out / f"{args.name}.partial.json", rows)
    order = {f.name: i for i, f in enumerate(folders)}
    done = {(r["problem"], r["seed"]) for r in rows}
    rows.sort(key=lambda r: (order.get(r["problem"], len(order)), r["seed"]))
    return rows + [r for key, r in saved.items() if key not in done]  # earlier invocations' rows


def main(argv: list[str] | None = None) -> None:
    """Runs the suite (or, with --report, reads it back) and writes the tables and the plot."""
    ap, args = parse_args(argv)
    console = Console(width=170)
    if args.report:
        write_outputs(saved_report(ap, args), args.out, args.name, console)
        return
    if args.calls < 1:
        ap.error("--calls must be at least 1")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got {args.seeds!r}")
    folders = suite_problems(args.problems)
    exit_on_sigterm()
    write_outputs(run_suite(args, seeds, folders, console), args.out, args.name, console)


if __name__ == "__main__":
    main()
