"""The `evoforge` command: run, resume, runs, best, export, eval, problems check, db upgrade."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console
from rich.logging import RichHandler
from rich.table import Table

from service.config import ConfigError, Settings, build_run_config
from service.db import Database, SchemaOutOfDate, upgrade
from service.db.models import RunRow
from service.db.queries import dumps, export_rows, list_runs
from service.engine import InitialProgramFailed, RunBusy
from service.launch import create_run, drive, load_run, run_config_for, update_config, write_best
from service.llm.base import LLMError, LLMUnavailable
from service.problem import ProblemError, load_problem
from service.verify import tier_label

app = typer.Typer(help="evoforge: LLM-driven evolutionary program search.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
runs_app = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
problems_app = typer.Typer(help="Validate and export problem folders.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
app.add_typer(problems_app, name="problems")
app.add_typer(db_app, name="db")

out = Console(soft_wrap=True)
err = Console(stderr=True)
F = TypeVar("F", bound=Callable[..., Any])
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in "
                                               "$EVOFORGE_HOME, ./.evoforge).")]
JsonOpt = Annotated[bool, typer.Option("--json", help="End with one JSON line of the results.")]
USER_ERRORS = (ProblemError, ConfigError, LookupError, SchemaOutOfDate, RunBusy,
               InitialProgramFailed, LLMError, LLMUnavailable, FileNotFoundError)


def friendly(fn: F) -> F:
    """Turns expected errors into one clear message and exit code 1 (no traceback)."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except USER_ERRORS as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(1) from None
    return wrapper  # type: ignore[return-value]


def _settings(db: str | None) -> Settings:
    settings = Settings()
    if db:
        settings.db = db
    return settings


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING, format="%(message)s",
                        handlers=[RichHandler(console=err, show_path=False)])


@app.command()
@friendly
def run(problem: Annotated[Path, typer.Argument(help="Problem folder.")],
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
        verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Evolve PROBLEM: store every program, show progress, print the best."""
    _setup_logging(verbose)
    prob = load_problem(problem)
    for note in prob.notes:
        err.print(f"[yellow]note:[/] {note}")
    overrides: dict[str, Any] = {}
    _put(overrides, "budget", "iterations", iterations)
    _put(overrides, "llm", "backend", llm)
    _put(overrides, "llm", "url", llm_url)
    _put(overrides, "llm", "model", model)
    _put(overrides, "evaluation", "workers", workers)
    _put(overrides, "evaluation", "executor", executor)
    _put(overrides, "evaluation", "broker", broker)
    if seed is not None:
        overrides["seed"] = seed
    cfg = run_config_for(prob, config, overrides)
    settings = _settings(db)
    database = Database(settings.database_url())
    run_id = create_run(database, prob, cfg)
    err.print(f"run [bold]{run_id}[/] on {prob.name} → {settings.database_url()}")
    _drive(database, run_id, settings, json_out)


@app.command()
@friendly
def resume(run_id: int, db: DbOpt = None,
           iterations: Annotated[int | None, typer.Option(help="New total iteration budget.")]
           = None,
           llm_url: Annotated[str | None, typer.Option(help="Another LLM server URL.")] = None,
           model: Annotated[str | None, typer.Option(help="Another model name.")] = None,
           workers: Annotated[int | None, typer.Option(help="Evaluations at once.")] = None,
           json_out: JsonOpt = False,
           verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False) -> None:
    """Continue a stopped, paused or interrupted run from what the database holds."""
    _setup_logging(verbose)
    settings = _settings(db)
    database = Database(settings.database_url())
    _, _, cfg = load_run(database, run_id, settings)
    changes: dict[str, Any] = {}
    _put(changes, "budget", "iterations", iterations)
    _put(changes, "llm", "url", llm_url)
    _put(changes, "llm", "model", model)
    _put(changes, "evaluation", "workers", workers)
    if changes:
        cfg = build_run_config(cfg.model_dump(mode="json"), changes, source=f"run {run_id}")
        update_config(database, run_id, cfg)
    _drive(database, run_id, settings, json_out)


def _drive(database: Database, run_id: int, settings: Settings, json_out: bool) -> None:
    from service.progress import RunDisplay

    row, _, cfg = load_run(database, run_id, settings)
    with RunDisplay(err, f"run {run_id}", cfg.budget.iterations, row.iterations) as display:
        try:
            final = asyncio.run(drive(database, run_id, settings, display.update))
        except KeyboardInterrupt:
            display.progress.stop()
            err.print(f"[yellow]interrupted[/]: run {run_id} is paused; "
                      f"`evoforge resume {run_id}` continues it")
            raise typer.Exit(130) from None
    best_path = settings.home / "runs" / str(run_id) / "best_program.py"
    best = write_best(database, run_id, best_path)
    _summary(final, best_path if best else None, json_out, tier_label(best) if best else None)
    if final.status == "paused":
        err.print(f"[yellow]paused:[/] {final.stop_reason}; fix it, then `evoforge resume {run_id}`")
        raise typer.Exit(3)


def _summary(run: RunRow, best_path: Path | None, json_out: bool,
             tier: str | None = None) -> None:
    gain = (run.best_score - run.initial_score) if run.best_score is not None and \
        run.initial_score is not None else None
    out.print(f"run {run.id} {run.status}: {run.stop_reason}")
    out.print(f"best score {run.best_score!r} (initial {run.initial_score!r}, change "
              f"{gain if gain is None else f'{gain:+.6g}'}) after {run.iterations} iterations, "
              f"{run.evaluations} evaluations ({run.failed} failed), {run.llm_calls} LLM calls")
    if tier:
        out.print(f"best score tier: {tier}", highlight=False)
    if best_path:
        out.print(f"best program: {best_path}")
    if json_out:
        print(json.dumps({
            "run_id": run.id, "status": run.status, "stop_reason": run.stop_reason,
            "best_score": run.best_score, "initial_score": run.initial_score,
            "best_program_id": run.best_program_id, "best_path": str(best_path or ""),
            "best_tier": tier,
            "iterations": run.iterations, "evaluations": run.evaluations, "failed": run.failed,
            "llm_calls": run.llm_calls,
            "tokens": run.prompt_tokens + run.completion_tokens, "elapsed_s": run.elapsed_s}))


@runs_app.command("list")
@friendly
def runs_list(db: DbOpt = None, limit: int = 50, json_out: JsonOpt = False) -> None:
    """List runs, newest first."""
    database = Database(_settings(db).database_url())
    with database.session() as s:
        rows = list_runs(s, limit)
    if json_out:
        for r, p in rows:
            print(json.dumps({"run_id": r.id, "problem": p.name, "status": r.status,
                              "iterations": r.iterations, "evaluations": r.evaluations,
                              "failed": r.failed, "initial_score": r.initial_score,
                              "best_score": r.best_score, "created_at": r.created_at.isoformat(),
                              "stop_reason": r.stop_reason}))
        return
    table = Table("id", "problem", "status", "iterations", "evals", "failed", "initial", "best",
                  "created")
    for r, p in rows:
        table.add_row(str(r.id), p.name, r.status, str(r.iterations), str(r.evaluations),
                      str(r.failed), f"{r.initial_score!r}", f"{r.best_score!r}",
                      r.created_at.strftime("%Y-%m-%d %H:%M"))
    out.print(table)


@app.command()
@friendly
def best(run_id: int, db: DbOpt = None,
         out_file: Annotated[Path | None, typer.Option("--out", help="Write the code here.")]
         = None) -> None:
    """Print (or write) the best program of a run."""
    settings = _settings(db)
    database = Database(settings.database_url())
    load_run(database, run_id, settings)
    target = out_file or settings.home / "runs" / str(run_id) / "best_program.py"
    prog = write_best(database, run_id, target)
    if prog is None:
        raise LookupError(f"run {run_id} has no scored program yet")
    err.print(f"program {prog.id}: score {prog.score!r} ({tier_label(prog)}) → {target}",
              highlight=False, markup=False)
    if out_file is None:
        print(prog.code)


@app.command()
@friendly
def export(run_id: int, db: DbOpt = None,
           out_file: Annotated[Path | None, typer.Option("--out", help="JSONL file "
                                                            "(default: stdout).")] = None) -> None:
    """Export every program of a run as JSONL, with the prompt and completion behind it."""
    settings = _settings(db)
    database = Database(settings.database_url())
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


@app.command("eval")
@friendly
def eval_program(problem: Path, program_file: Path, json_out: JsonOpt = False) -> None:
    """Evaluate one program exactly as the loop would (same sandbox)."""
    from evaluators.runner import evaluate_job
    from service.dispatch import make_job

    prob = load_problem(problem)
    cfg = run_config_for(prob, None, {})
    result = evaluate_job(make_job(prob, program_file.read_text(), cfg.evaluation))
    if json_out:
        print(json.dumps(result.to_dict(), default=str))
    else:
        out.print(f"status: {result.status}  score: {result.score!r}  ({result.duration_s:.2f} s)")
        for k, v in result.metrics.items():
            out.print(f"  {k} = {v!r}")
        if result.error:
            out.print(f"[red]failure ({result.error_kind}):[/] {result.error}", highlight=False)
        for k, v in result.artifacts.items():
            out.print(f"[dim]{k}:[/] {str(v)[-2000:]}", highlight=False)
    raise typer.Exit(0 if result.ok else 1)


@problems_app.command("check")
@friendly
def problems_check(problem: Path) -> None:
    """Validate a problem folder and evaluate its initial program; exit 1 on any defect."""
    from service.checks import check_problem

    report = check_problem(problem)
    out.print(report.render(), highlight=False)
    raise typer.Exit(0 if report.ok else 1)


@db_app.command("upgrade")
@friendly
def db_upgrade(db: DbOpt = None) -> None:
    """Apply Alembic migrations to the database."""
    url = _settings(db).database_url()
    upgrade(url)
    err.print(f"database at head: {url}")


def _put(d: dict[str, Any], section: str, key: str, value: Any) -> None:
    if value is not None:
        d.setdefault(section, {})[key] = value


# Command groups that live in their own modules; each has `register(app)`.
_COMMAND_MODULES: tuple[str, ...] = ("service.cli_worker", "service.cli_service",
                                     "service.cli_runs_show", "service.cli_verify",
                                     "service.cli_train", "service.cli_trainer",
                                     "service.cli_problems_export")
if __name__ != "__main__":  # `python -m service.cli` registers them on its import below
    for _name in _COMMAND_MODULES:
        __import__(_name, fromlist=["register"]).register(app)


if __name__ == "__main__":
    from service.cli import app as _app

    _app()
