"""`evoforge runs show RUN`: a run's totals with per-model and per-island statistics."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from service.run_stats import GroupStats, RunStats, run_stats

out = Console(soft_wrap=True)
err = Console(stderr=True)
OUTCOMES = ("child", "rejected", "too_similar", "duplicate", "unchanged")


def show(run_id: Annotated[int, typer.Argument(help="Run id (see `evoforge runs list`).")],
         db: Annotated[str | None, typer.Option("--db", help="Database URL (default: SQLite "
                                                "in $EVOFORGE_HOME, ./.evoforge).")] = None,
         json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False
         ) -> None:
    """Show a run: totals, per-model and per-island tokens, cost, outcomes and improvements."""
    from service.config import Settings
    from service.db import Database, SchemaOutOfDate

    settings = Settings()
    if db:
        settings.db = db
    try:
        database = Database(settings.database_url())
        with database.session() as s:
            stats = run_stats(s, run_id)
    except (LookupError, SchemaOutOfDate) as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    if json_out:
        print(json.dumps(stats.as_dict(), default=str))
        return
    render(stats)


def render(stats: RunStats) -> None:
    """Prints the statistics as tables."""
    r = stats.run
    out.print(f"run {r['id']} [{r['status']}]: best {r['best_score']!r} (initial "
              f"{r['initial_score']!r}); {r['iterations']} iterations, {r['llm_calls']} LLM "
              f"calls, {r['tokens']} tokens, cost {r['cost']:.4g}, {r['evaluations']} evaluations "
              f"({r['failed']} failed); {r['too_similar']} evaluations saved by novelty "
              f"rejection; {stats.island_resets} island resets", highlight=False)
    if r["stop_reason"]:
        out.print(f"stopped: {r['stop_reason']}", highlight=False)
    out.print(_table("model", stats.models))
    out.print(_table("island", stats.islands, best=True))
    if stats.scratchpads:
        out.print(f"scratchpad ({stats.scratchpads} versions), latest:\n{stats.scratchpad}",
                  highlight=False)


def _table(title: str, groups: list[GroupStats], best: bool = False) -> Table:
    cols = [title, "samples", "tokens", "cost", *OUTCOMES, "evaluated", "improved", "gain"]
    table = Table(*cols, *(["best"] if best else []))
    for g in groups:
        row = [g.key, str(g.samples), str(g.tokens), f"{g.cost:.4g}",
               *(str(g.outcomes.get(o, 0)) for o in OUTCOMES), str(g.evaluated), str(g.improved),
               f"{g.gain:.4g}"]
        table.add_row(*row, *([f"{g.best_score!r}"] if best else []))
    return table


def register(app: typer.Typer) -> None:
    """Adds `show` to the `runs` command group."""
    for group in app.registered_groups:
        if group.name == "runs" and group.typer_instance is not None:
            group.typer_instance.command("show")(show)
            return
    raise RuntimeError("the `runs` command group is missing from the evoforge CLI")
