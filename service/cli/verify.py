"""`evoforge verify RUN`: re-verify a run's best programs in a fresh sandbox, show their tiers."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.table import Table

from service.cli.common import DbOpt, err, friendly, open_database, out


@friendly
def verify(run_id: Annotated[int, typer.Argument(help="Run id (see `evoforge runs list`).")],
           top_k: Annotated[int | None, typer.Option(
               "--top-k", min=1, help="Programs to re-verify (default: the run's "
               "evaluation.reverify_top_k, else 3).")] = None,
           db: DbOpt = None,
           json_out: Annotated[bool, typer.Option("--json", help="One JSON line per program.")]
           = False) -> None:
    """Re-verify the best programs of a run in a fresh sandbox; exit 1 if any fails."""
    from service.db.stored import load_run
    from service.evolution.reverify import reverify_run

    database, settings = open_database(db)
    _, problem, cfg = load_run(database, run_id, settings)
    k = top_k if top_k is not None else (cfg.evaluation.reverify_top_k or 3)
    verdicts = reverify_run(database, run_id, problem, cfg, k)
    if not verdicts:
        err.print(f"run {run_id} has no scored program to re-verify")
        raise typer.Exit(1)
    if json_out:
        for v in verdicts:
            print(json.dumps({"program_id": v.program_id, "score": v.score,
                              "verified_score": v.verified_score, "tier": v.label,
                              "note": v.note}))
    else:
        table = Table("program", "evaluated score", "re-verified score", "tier", "note")
        for v in verdicts:
            table.add_row(str(v.program_id), f"{v.score!r}", f"{v.verified_score!r}", v.label,
                          v.note[:200])
        out.print(table)
    raise typer.Exit(0 if all(v.tier != "failed" for v in verdicts) else 1)


def register(app: typer.Typer) -> None:
    """Adds the verify command to the evoforge app."""
    app.command("verify")(verify)
