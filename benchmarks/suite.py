"""evoforge on every problem of the suite for a fixed budget: best strict score and gap to best known.

Each problem x seed is a real `evoforge run --llm openai` against one OpenAI-compatible server (by
default a llama-cpp-python server on the embedded SmolLM2-135M, started here). The best program
of each run is re-scored by `evoforge eval` (sandbox + the problem's strict verifier). Prints a
table and writes benchmarks/out/<name>.json and <name>.md. Resumable: a (problem, seed) already
saved in <name>.json or <name>.partial.json with the same budget and model is not run again
(--fresh runs everything).

    .venv/bin/python benchmarks/suite.py [--problems all | a,b,c] [--calls 20] [--seeds 0]
        [--url URL --model M] [--fresh]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE), str(HERE.parent)]

from _suite_report import SUMMARY_COLUMNS, plot_suite, summarise, summary_markdown
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
from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select

from service.db import Database
from service.db.models import LLMSampleRow
from service.problems.load import Problem, ProblemError, load_problem

COLUMNS = ("problem", "seed", "direction", "initial", "best strict", "tier", "best known",
           "gap", "LLM calls", "tokens", "wall s")


def suite_problems(spec: str) -> list[Path]:
    """Returns the problem folders: every folder under problems/ with an evaluator, or a list."""
    if spec == "all":
        found = sorted(p for p in (ROOT / "problems").iterdir() if _is_problem(p))
        if not found:
            raise SystemExit(f"no problem folders (evaluator.py or problem.toml) under "
                             f"{ROOT / 'problems'}")
        return found
    folders = []
    for name in (n for n in spec.split(",") if n):
        hits = [c for c in (Path(name), ROOT / "problems" / name) if _is_problem(c)]
        if not hits:
            raise SystemExit(f"--problems: {name!r} is not a problem folder (no evaluator.py or "
                             f"problem.toml at {name} or problems/{name}); list problems/ for "
                             "the names")
        folders.append(hits[0].resolve())
    return folders


def _is_problem(folder: Path) -> bool:
    """Returns True for a problem folder: an evaluator.py, or a problem.toml (two-phase: none)."""
    return folder.is_dir() and any((folder / f).exists() for f in ("evaluator.py", "problem.toml"))


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
    r = run_evoforge(problem.path, url, model, args.calls, seed, args.workers, work,
                     problem.direction == "maximize",
                     llm=evoforge_llm(args),
                     timeout_s=args.run_timeout_s)
    code = r.pop("best_code")
    outcomes = sample_outcomes(work / "evoforge.db", r["run_id"])
    strict = strict_score(problem.path, code) if code else {"status": "none", "score": None}
    tier = "re-verified strict" if strict["status"] == "ok" else f"rejected: {strict.get('error')}"
    return {"problem": path.name, "seed": seed, "direction": problem.direction,
            "initial": initial["score"], "best_reported": r["best_score"],
            "best_strict": strict["score"], "tier": tier, "best_known": problem.best_known,
            "best_known_source": problem.best_known_source,
            "gap": gap(strict["score"], problem), "llm_calls": r["llm_calls"],
            "tokens": r["tokens"], "wall_s": r["wall_s"], "iterations": r["iterations"],
            "evaluations": r["evaluations"], "failed": r["failed"], "curve": r["curve"],
            "outcomes": outcomes, "calls": args.calls, "model": model, "finished_at": datetime.now(UTC).isoformat(),
            "load_avg": os.getloadavg()}


def sample_outcomes(db_file: Path, run_id: int) -> dict[str, int]:
    """Returns how many LLM answers of the run ended as each outcome (child, rejected, ...)."""
    db = Database(f"sqlite:///{db_file}")
    try:
        with db.session() as s:
            return dict(s.execute(select(LLMSampleRow.outcome, func.count()).where(
                LLMSampleRow.run_id == run_id).group_by(LLMSampleRow.outcome)).all())
    finally:
        db.close()


def saved_rows(out: Path, name: str, calls: int, model: str) -> dict[tuple[str, int], dict]:
    """Returns the finished rows of an earlier invocation with the same budget and model."""
    rows: dict[tuple[str, int], dict] = {}
    for f in (out / f"{name}.json", out / f"{name}.partial.json"):
        if not f.exists():
            continue
        for r in json.loads(f.read_text()):
            if "error" not in r and r.get("calls") == calls and r.get("model") == model:
                rows[(r["problem"], r["seed"])] = r
    return rows


def _num(value: float | None) -> str:
    return "" if value is None else format(value, ".6g")


def _cells(row: dict[str, Any]) -> list[str]:
    f = _num
    return [row["problem"], str(row["seed"]), row["direction"][:3], f(row["initial"]),
            f(row["best_strict"]), row["tier"][:40], f(row["best_known"]),
            "" if row["gap"] is None else f"{100 * row['gap']:.2f} %", str(row["llm_calls"]),
            str(row["tokens"]), f"{row['wall_s']:.0f}"]


def markdown(rows: list[dict[str, Any]]) -> str:
    """Returns the results as a Markdown table."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(_cells(r)) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    """Runs the suite and writes the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--problems", default="all", help="'all' (every folder under problems/) "
                    "or names / paths, comma-separated")
    ap.add_argument("--calls", type=int, default=20, help="budget per run in LLM calls")
    ap.add_argument("--seeds", default="0", help="seeds, comma-separated")
    ap.add_argument("--url", default=None, help="OpenAI-compatible /v1 URL; default: start a "
                    "llama-cpp-python server on the embedded SmolLM2 GGUF")
    ap.add_argument("--model", default=None, help="model name; default: the first the server lists")
    ap.add_argument("--n-ctx", type=int, default=4096, help="context of the started server")
    ap.add_argument("--llm-timeout-s", type=float, default=600, help="per LLM request, both "
                    "systems (a one-slot local server queues requests; 120 s timed out under load)")
    ap.add_argument("--workers", type=int, default=2, help="evaluations at once")
    ap.add_argument("--out", type=Path, default=OUT, help="folder for the outputs")
    ap.add_argument("--name", default="suite", help="output file stem under benchmarks/out")
    ap.add_argument("--fresh", action="store_true", help="ignore saved results, run everything")
    ap.add_argument("--run-timeout-s", type=float, default=3600, help="kill one run after this")
    ap.add_argument("--report", action="store_true", help="run nothing: rebuild the tables and "
                    "the plot from <name>.json")
    ap.add_argument("--merge", default="", help="with --report: also the rows of these output "
                    "stems (e.g. a second invocation's --name), comma-separated; the first wins")
    args = ap.parse_args(argv)
    console = Console(width=170)
    if args.report:
        rows = []
        for stem in [args.name, *(n for n in args.merge.split(",") if n)]:
            if not (saved := args.out / f"{stem}.json").exists():
                ap.error(f"--report: no {saved}")
            have = {(r["problem"], r["seed"]) for r in rows}
            rows += [r for r in json.loads(saved.read_text()) if (r["problem"], r["seed"]) not in have]
        listed = [] if args.problems == "all" else [Path(n).name for n in args.problems.split(",")]
        order = {p: i for i, p in enumerate(dict.fromkeys(listed + [r["problem"] for r in rows]))}
        rows.sort(key=lambda r: (order[r["problem"]], r["seed"]))
        write_outputs(rows, args.out, args.name, console)
        return
    if args.calls < 1:
        ap.error("--calls must be at least 1")
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s]
    except ValueError:
        ap.error(f"--seeds must be integers separated by commas, got {args.seeds!r}")
    folders = suite_problems(args.problems)
    exit_on_sigterm()
    rows: list[dict[str, Any]] = []
    server = contextlib.nullcontext(args.url) if args.url else llama_server(args.n_ctx)
    with server as url, tempfile.TemporaryDirectory(prefix="suite-") as tmp:
        model = args.model or served_model(url)
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
                args.out.mkdir(parents=True, exist_ok=True)  # what is done survives an interrupt
                (args.out / f"{args.name}.partial.json").write_text(json.dumps(rows, indent=1))
    order = {f.name: i for i, f in enumerate(folders)}
    done = {(r["problem"], r["seed"]) for r in rows}
    rows.sort(key=lambda r: (order.get(r["problem"], len(order)), r["seed"]))
    rows += [r for key, r in saved.items() if key not in done]  # earlier invocations' other rows
    write_outputs(rows, args.out, args.name, console)


def write_outputs(rows: list[dict[str, Any]], out: Path, name: str, console: Console) -> None:
    """Prints the tables; writes <name>.json, <name>.md (runs + summary) and <name>.png."""
    ok = [r for r in rows if "error" not in r]
    calls = sorted({r.get("calls", r["llm_calls"]) for r in ok})
    model = next((r["model"] for r in ok if "model" in r), "?")
    title = f"suite: evoforge, {','.join(map(str, calls))} LLM calls per run, {model}"
    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="right")
    for r in ok:
        table.add_row(*_cells(r))
    console.print(table)
    summary = summarise(rows)
    totals = Table(title="per problem over seeds")
    for col in SUMMARY_COLUMNS:
        totals.add_column(col, justify="right")
    for line in summary_markdown(summary).splitlines()[2:]:
        totals.add_row(*(c.strip() for c in line.strip("|").split("|")))
    console.print(totals)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(rows, indent=1))
    (out / f"{name}.md").write_text(markdown(ok) + "\n" + summary_markdown(summary))
    plotted = bool(ok) and plot_suite(ok, out / f"{name}.png", title)
    console.print(f"json: {out / f'{name}.json'}  markdown: {out / f'{name}.md'}"
                  + (f"  plot: {out / f'{name}.png'}" if plotted else ""))
    if len(ok) < len(rows):
        raise SystemExit(f"{len(rows) - len(ok)} of {len(rows)} runs failed; see above")

if __name__ == "__main__":
    main()
