"""`evoforge runs list` and `runs show RUN`: every run, and one run's per-model and per-island
statistics."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from service.cli.common import DbOpt, JsonOpt, friendly, open_database, out
from service.db.models import ProgramRow
from service.db.queries import list_runs
from service.db.status import SampleOutcome
from service.evolution.reverify import tier_label
from service.evolution.stats import GroupStats, RunStats, run_stats

group = typer.Typer(help="List and inspect runs.", no_args_is_help=True)
OUTCOMES = tuple(o for o in SampleOutcome if o != SampleOutcome.PENDING)


@group.command("list")
@friendly
def runs_list(db: DbOpt = None, limit: int = 50, json_out: JsonOpt = False) -> None:
    """List runs, newest first."""
    database, _ = open_database(db)
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


@group.command("show")
@friendly
def show(run_id: Annotated[int, typer.Argument(help="Run id (see `evoforge runs list`).")],
         db: DbOpt = None,
         json_out: Annotated[bool, typer.Option("--json", help="Print one JSON object.")] = False
         ) -> None:
    """Show a run: totals, per-model and per-island tokens, cost, outcomes and improvements."""
    database, _ = open_database(db)
    with database.session() as s:
        stats = run_stats(s, run_id)
        best = s.get(ProgramRow, stats.run["best_program_id"] or 0)
        tier = tier_label(best) if best is not None else None
    if json_out:
        print(json.dumps({**stats.as_dict(), "best_tier": tier}, default=str))
        return
    render(stats, tier)


def render(stats: RunStats, tier: str | None = None) -> None:
    """Prints the statistics as tables."""
    r = stats.run
    shown = f", {tier}" if tier else ""
    out.print(f"run {r['id']} [{r['status']}]: best {r['best_score']!r}{shown} (initial "
              f"{r['initial_score']!r}); {r['iterations']} iterations, {r['llm_calls']} LLM "
              f"calls, {r['tokens']} tokens, cost {r['cost']:.4g}, {r['evaluations']} evaluations "
              f"({r['failed']} failed); {r['too_similar']} evaluations saved by novelty "
              f"rejection; {stats.island_resets} island resets", highlight=False, markup=False)
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
