"""`evoforge run`, `resume`, `best`, `export` and `eval`: evolve a problem and read what it made."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape

from service.cli.common import (
    DbOpt,
    JsonOpt,
    LogFormatOpt,
    VerboseOpt,
    err,
    friendly,
    json_logs,
    open_database,
    out,
    put,
    say,
    setup_logging,
)
from service.config import build_run_config
from service.db import Database
from service.db.models import RunRow
from service.db.queries import (
    dumps,
    export_rows,
    reported_errors,
    scored_metrics,
    starting_programs,
)
from service.db.status import RunStatus
from service.evolution.population import marked_invalid
from service.evolution.reverify import tier_label
from service.problems.load import Problem, ProblemError, load_problem
from service.runs import create_run, drive, load_run, run_config_for, update_config, write_best
from service.settings import Settings
from service.telemetry.logs import LogFormat


@friendly
def run(problem: Annotated[Path, typer.Argument(help="Problem folder, or the name of a shipped "
                                                "problem (`evoforge problems list`).")],
        config: Annotated[Path | None, typer.Option(help="RUN.toml with run settings.")] = None,
        iterations: Annotated[int | None, typer.Option(help="Child programs to propose.")] = None,
        db: DbOpt = None,
        llm: Annotated[str | None, typer.Option(help="llamacpp | openai")] = None,
        llm_url: Annotated[str | None, typer.Option(help="OpenAI-compatible base URL.")] = None,
        model: Annotated[str | None, typer.Option(help="Model name or GGUF path.")] = None,
        seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
        workers: Annotated[int | None, typer.Option(help="Evaluations at once.")] = None,
        executor: Annotated[str | None, typer.Option(help="local | celery")] = None,
        broker: Annotated[str | None, typer.Option(help="celery: broker URL.")] = None,
        json_out: JsonOpt = False,
        verbose: VerboseOpt = False,
        log_format: LogFormatOpt = LogFormat.RICH) -> None:
    """Evolve PROBLEM: store every program, show progress, print the best."""
    setup_logging(verbose, log_format)
    prob = load_problem(problem)
    for note in prob.notes:
        say(f"[yellow]note:[/] {note}")
    overrides: dict[str, Any] = {}
    put(overrides, "budget", "iterations", iterations)
    put(overrides, "llm", "backend", llm)
    put(overrides, "llm", "url", llm_url)
    put(overrides, "llm", "model", model)
    _describe_own_model(overrides)
    put(overrides, "evaluation", "workers", workers)
    put(overrides, "evaluation", "executor", executor)
    put(overrides, "evaluation", "broker", broker)
    if seed is not None:
        overrides["seed"] = seed
    cfg = run_config_for(prob, config, overrides)
    database, settings = open_database(db)
    run_id = create_run(database, prob, cfg)
    say(f"run [bold]{run_id}[/] on {prob.name} → {settings.database_url()}")
    _drive(database, run_id, settings, json_out)


@friendly
def resume(run_id: int, db: DbOpt = None,
           iterations: Annotated[int | None, typer.Option(help="New total iteration budget.")]
           = None,
           llm_url: Annotated[str | None, typer.Option(help="Another LLM server URL.")] = None,
           model: Annotated[str | None, typer.Option(help="Another model name.")] = None,
           workers: Annotated[int | None, typer.Option(help="Evaluations at once.")] = None,
           json_out: JsonOpt = False,
           verbose: VerboseOpt = False,
           log_format: LogFormatOpt = LogFormat.RICH) -> None:
    """Continue a stopped, paused or interrupted run from what the database holds."""
    setup_logging(verbose, log_format)
    database, settings = open_database(db)
    _, _, cfg = load_run(database, run_id, settings)
    changes: dict[str, Any] = {}
    put(changes, "budget", "iterations", iterations)
    put(changes, "llm", "url", llm_url)
    put(changes, "llm", "model", model)
    _describe_own_model(changes)
    put(changes, "evaluation", "workers", workers)
    if changes:
        cfg = build_run_config(cfg.model_dump(mode="json"), changes, source=f"run {run_id}")
        update_config(database, run_id, cfg)
    _drive(database, run_id, settings, json_out)


def _describe_own_model(layer: dict[str, Any]) -> None:
    """A model given on the command line replaces one picked by name (llm.use) in the config."""
    if layer.get("llm"):
        layer["llm"]["use"] = None


def _drive(database: Database, run_id: int, settings: Settings, json_out: bool) -> None:
    from service.cli.progress import RunDisplay

    row, _, cfg = load_run(database, run_id, settings)
    with RunDisplay(err, f"run {run_id}", cfg.budget.iterations, row.iterations,
                    enabled=not json_logs()) as display:
        try:
            final = asyncio.run(drive(database, run_id, settings, display.update))
        except KeyboardInterrupt:
            display.progress.stop()
            say(f"[yellow]interrupted[/]: run {run_id} is paused; "
                f"`evoforge resume {run_id}` continues it")
            raise typer.Exit(130) from None
    written = write_best(database, run_id, settings.home / "runs" / str(run_id) /
                         "best_program.py")
    best, best_path = written if written is not None else (None, None)
    with database.session() as s:
        reported = reported_errors(s, run_id)
        starts = starting_programs(s, run_id)
        invalid = sum(marked_invalid(m) for m in scored_metrics(s, run_id))
    _summary(final, best_path, json_out, tier_label(best) if best else None,
             reported, starts, invalid)
    if final.status == RunStatus.PAUSED:
        say(f"[yellow]paused:[/] {final.stop_reason}; fix it, then `evoforge resume {run_id}`")
        raise typer.Exit(3)


def _summary(run: RunRow, best_path: Path | None, json_out: bool,
             tier: str | None = None, reported: tuple[int, str | None] = (0, None),
             starts: list[tuple[int, int, float | None, str | None]] | None = None,
             invalid: int = 0) -> None:
    gain = (run.best_score - run.initial_score) if run.best_score is not None and \
        run.initial_score is not None else None
    out.print(f"run {run.id} {run.status}: {run.stop_reason}")
    out.print(f"best score {run.best_score!r} (initial {run.initial_score!r}, change "
              f"{gain if gain is None else f'{gain:+.6g}'}) after {run.iterations} iterations, "
              f"{run.evaluations} evaluations ({run.failed} failed), {run.llm_calls} LLM calls")
    if starts and len(starts) > 1:
        out.print(f"{len(starts)} starting programs: " + ", ".join(
            f"#{pid} (island {island}) {score!r}" if score is not None
            else f"#{pid} (island {island}) failed ({kind})"
            for pid, island, score, kind in starts), highlight=False, markup=False)
    if invalid:
        out.print(f"{invalid} scored children were marked invalid by the evaluator (validity 0): "
                  "kept, never parents (search.invalid_parents)", highlight=False, markup=False)
    if reported[0]:
        out.print(f"{reported[0]} scored program(s) carry an error their evaluator reported; "
                  f"latest: {reported[1]}", highlight=False, markup=False)
    if tier:
        out.print(f"best score tier: {tier}", highlight=False, markup=False)
    if best_path:
        out.print(f"best program: {best_path}")
    if json_out:
        print(json.dumps({
            "run_id": run.id, "status": run.status, "stop_reason": run.stop_reason,
            "best_score": run.best_score, "initial_score": run.initial_score,
            "best_program_id": run.best_program_id, "best_path": str(best_path or ""),
            "best_tier": tier, "reported_errors": reported[0], "invalid": invalid,
            "starting_programs": [{"id": pid, "island": island, "score": score,
                                   "failure_kind": kind}
                                  for pid, island, score, kind in starts or []],
            "iterations": run.iterations, "evaluations": run.evaluations, "failed": run.failed,
            "llm_calls": run.llm_calls,
            "tokens": run.prompt_tokens + run.completion_tokens, "elapsed_s": run.elapsed_s}))


@friendly
def best(run_id: int, db: DbOpt = None,
         out_file: Annotated[Path | None, typer.Option(
             "--out", help="Write the code here (a folder program: this folder).")]
         = None) -> None:
    """Print (or write) the best program of a run."""
    database, settings = open_database(db)
    _, problem, _ = load_run(database, run_id, settings)
    target = out_file or settings.home / "runs" / str(run_id) / "best_program.py"
    written = write_best(database, run_id, target)
    if written is None:
        raise LookupError(f"run {run_id} has no scored program yet")
    prog, target = written
    err.print(f"program {prog.id}: score {prog.score!r} ({tier_label(prog)}) → {target}",
              highlight=False, markup=False)
    for line in reference_lines(problem, prog.score):
        err.print(line, highlight=False, markup=False)
    if out_file is None:
        print(prog.code)


def reference_lines(problem: Problem, score: float) -> list[str]:
    """Returns how a score stands against the problem's reference value (best_known), in the
    problem's direction: the reference with its provenance, then the gap; none without one."""
    ref = problem.best_known
    if ref is None:
        return []
    how = "verified: a public construction re-scores to it" if problem.best_known_verified \
        else "reported, not re-scored here"
    slack = problem.best_known_tolerance
    holds = "" if slack is None else f"; holds at tolerance {slack:g}"
    gain = problem.direction.gain(score, ref)
    share = f" ({100 * abs(gain) / abs(ref):.3g}% of it)" if ref else ""
    if gain > 0:
        verdict = f"beats the reference by {gain:.6g}{share}"
    elif gain < 0:
        verdict = f"is {-gain:.6g}{share} short of the reference"
    else:
        verdict = "equals the reference"
    source = problem.best_known_source or "an unnamed source"
    return [f"reference {ref!r} ({how}{holds}) from {source}",
            f"gap: score {score!r} {verdict} ({problem.direction.phrase})"]


@friendly
def export(run_id: int, db: DbOpt = None,
           out_file: Annotated[Path | None, typer.Option("--out", help="JSONL file "
                                                            "(default: stdout).")] = None) -> None:
    """Export every program of a run as JSONL, with the prompt and completion behind it."""
    database, settings = open_database(db)
    load_run(database, run_id, settings)
    stream = out_file.open("w") if out_file else sys.stdout
    count = 0
    with database.session() as s:
        for row in export_rows(s, run_id):
            stream.write(dumps(row) + "\n")
            count += 1
    if out_file:
        stream.close()
    err.print(f"exported {count} programs")


@friendly
def eval_program(problem: Path, program_file: Annotated[Path, typer.Argument(
        help="The program: a file, or a folder for a problem whose programs are folders.")],
                 json_out: JsonOpt = False) -> None:
    """Evaluate one program exactly as the loop would (same sandbox)."""
    from evaluators import tree
    from evaluators.evaluate import evaluate_job
    from service.execution.base import make_job
    from service.execution.check import stage_line

    prob = load_problem(problem)
    cfg = run_config_for(prob, None, {})
    code = read_program(program_file, prob)
    result = evaluate_job(make_job(prob, code, cfg.evaluation))
    files = list(tree.split(code)) if tree.is_tree(code) else [program_file.name]
    if json_out:
        print(json.dumps({**result.to_dict(), "reported_error": result.reported_error,
                          "files": files}, default=str))
    else:
        out.print(f"program: {program_file} " + (f"(a folder of {len(files)} files: "
                  f"{', '.join(files)})" if tree.is_tree(code) else "(one file)"),
                  highlight=False, markup=False)
        out.print(f"status: {result.status}  score: {result.score!r}  ({result.duration_s:.2f} s)")
        out.print(f"sandbox layers: {', '.join(result.layers) or 'none (it did not run)'}",
                  highlight=False, markup=False)
        for record in result.stages:
            out.print(f"  stage {record['stage']}: "
                      f"{stage_line(record, cfg.evaluation.cascade_gates)}",
                      highlight=False, markup=False)
        for k, v in result.metrics.items():
            out.print(f"  {k} = {v!r}")
        if result.error:
            out.print(f"[red]failure ({result.error_kind}):[/] {escape(result.error)}",
                      highlight=False)
        if result.reported_error and result.ok:
            out.print(f"[yellow]the evaluator reported an error:[/] "
                      f"{escape(result.reported_error)}", highlight=False)
        for k, v in result.artifacts.items():
            out.print(f"[dim]{k}:[/] {escape(str(v)[-2000:])}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)


def read_program(path: Path, problem: Problem) -> str:
    """Returns the text form of a program given by path (a file or a folder) for problem; raises
    ProblemError when its form is not the one the problem's evaluator reads."""
    from evaluators import tree
    from service.execution.check import program_line

    if path.is_dir():
        try:
            code = tree.join(tree.read_folder(path))
        except tree.TreeError as exc:
            raise ProblemError(f"{path}: {exc}") from None
    else:
        code = path.read_text()  # a missing file: FileNotFoundError, said as such
    if tree.is_tree(code) != problem.is_tree:
        given = "a folder of files" if tree.is_tree(code) else "one file"
        raise ProblemError(f"{path}: {given}, but the programs of {problem.name} are "
                           f"{program_line(problem)}; give a program of that form (e.g. a copy "
                           "of the initial program, or what `evoforge best` wrote)")
    return code


def register(app: typer.Typer) -> None:
    """Adds run, resume, best, export and eval to the evoforge command."""
    app.command()(run)
    app.command()(resume)
    app.command()(best)
    app.command()(export)
    app.command("eval")(eval_program)
