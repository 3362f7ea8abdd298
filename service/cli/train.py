"""`evoforge train RUN_ID --steps N` (a GRPO + LoRA round by hand), `evoforge adapters RUN_ID`."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from service.cli.common import DbOpt, JsonOpt, err, fail, friendly, open_database, out


@friendly
def train(run_id: Annotated[int, typer.Argument(help="Run id (see `evoforge runs list`).")],
          steps: Annotated[int | None, typer.Option(help="GRPO steps (default: rl.steps).")] = None,
          lr: Annotated[float | None, typer.Option("--lr", help="Learning rate "
                                                   "(default: rl.learning_rate).")] = None,
          group_size: Annotated[int | None, typer.Option(help="Completions per prompt.")] = None,
          max_tokens: Annotated[int | None, typer.Option(help="Tokens per completion.")] = None,
          db: DbOpt = None,
          json_out: JsonOpt = False) -> None:
    """Fine-tune the run's mutation model (GRPO + LoRA) on its own prompts; record the adapter."""
    from service.db.stored import load_run
    from service.rl.grpo import train_round

    database, settings = open_database(db)
    _, _, cfg = load_run(database, run_id, settings)
    updates = {k: v for k, v in {"learning_rate": lr, "group_size": group_size,
                                 "max_completion_tokens": max_tokens}.items() if v is not None}
    try:
        rl = cfg.rl.model_validate({**cfg.rl.model_dump(), **updates})
    except ValueError as exc:
        fail(str(exc))
    err.print(f"training run {run_id}: {steps or rl.steps} GRPO steps, {rl.group_size} "
              f"completions per prompt, LoRA r={rl.lora_r} (CPU: about 10-30 s per step)")
    report = train_round(database, run_id, settings, steps=steps, rl=rl)
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


@friendly
def adapters(run_id: Annotated[int, typer.Argument(help="Run id.")], db: DbOpt = None) -> None:
    """List a run's adapter versions with their reward statistics."""
    from service.rl.adapters import list_adapters

    database, _ = open_database(db)
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
