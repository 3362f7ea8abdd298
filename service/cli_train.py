"""`evoforge train RUN_ID --steps N` (a GRPO + LoRA round by hand) and `evoforge adapters RUN_ID`."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

out = Console(soft_wrap=True)
err = Console(stderr=True)
DbOpt = Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite in "
                                           "$EVOFORGE_HOME, ./.evoforge).")]


def _database(db: str | None) -> tuple[Any, Any]:
    from service.config import Settings
    from service.db import Database

    settings = Settings()
    if db:
        settings.db = db
    return Database(settings.database_url()), settings


def train(run_id: Annotated[int, typer.Argument(help="Run id (see `evoforge runs list`).")],
          steps: Annotated[int | None, typer.Option(help="GRPO steps (default: rl.steps).")] = None,
          lr: Annotated[float | None, typer.Option("--lr", help="Learning rate "
                                                   "(default: rl.learning_rate).")] = None,
          group_size: Annotated[int | None, typer.Option(help="Completions per prompt.")] = None,
          max_tokens: Annotated[int | None, typer.Option(help="Tokens per completion.")] = None,
          db: DbOpt = None,
          json_out: Annotated[bool, typer.Option("--json", help="End with one JSON line.")] = False
          ) -> None:
    """Fine-tune the run's mutation model with GRPO + LoRA on its own prompts; record the adapter."""
    from service.config import ConfigError
    from service.db import SchemaOutOfDate
    from service.launch import load_run
    from service.trainer import train_round

    try:
        database, settings = _database(db)
        _, _, cfg = load_run(database, run_id, settings)
        updates = {k: v for k, v in {"learning_rate": lr, "group_size": group_size,
                                     "max_completion_tokens": max_tokens}.items() if v is not None}
        rl = cfg.rl.model_validate({**cfg.rl.model_dump(), **updates})
        err.print(f"training run {run_id}: {steps or rl.steps} GRPO steps, {rl.group_size} "
                  f"completions per prompt, LoRA r={rl.lora_r} (CPU: about 10-30 s per step)")
        report = train_round(database, run_id, settings, steps=steps, rl=rl)
    except (LookupError, ConfigError, SchemaOutOfDate, ValueError) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    info = report.adapter
    stats = report.reward_stats
    out.print(f"adapter {info.name} (version {info.version}, {info.steps} steps) at {info.path}; "
              f"reward mean {stats.get('mean', float('nan')):.3f} over {stats.get('n', 0)} "
              f"completions; {report.seconds:.0f} s, peak memory {report.peak_rss_mb:.0f} MB",
              highlight=False)
    if json_out:
        print(json.dumps({"run_id": run_id, "adapter": info.name, "version": info.version,
                          "path": str(info.path), "steps": info.steps, "reward_stats": stats,
                          "seconds": report.seconds, "peak_rss_mb": report.peak_rss_mb}))


def adapters(run_id: Annotated[int, typer.Argument(help="Run id.")], db: DbOpt = None) -> None:
    """List a run's adapter versions with their reward statistics."""
    from service.adapters import list_adapters

    database, _ = _database(db)
    table = Table("version", "name", "steps", "reward mean", "n", "path")
    for a in list_adapters(database, run_id):
        mean = a.reward_stats.get("mean")
        table.add_row(str(a.version), a.name, str(a.steps),
                      "-" if mean is None else f"{mean:.3f}", str(a.reward_stats.get("n", 0)),
                      str(a.path))
    out.print(table)


def register(app: typer.Typer) -> None:
    """Adds `train` and `adapters` to the evoforge command."""
    app.command("train")(train)
    app.command("adapters")(adapters)
