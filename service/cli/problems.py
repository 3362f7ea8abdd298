"""`evoforge problems list`, `check` and `export`: the shipped problems; validate a folder (or a
shipped problem by name), or write it as OpenEvolve runs it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import JsonOpt, fail, friendly, out

group = typer.Typer(help="List the shipped problems; validate and export problem folders.",
                    no_args_is_help=True)
ProblemArg = Annotated[Path, typer.Argument(help="Problem folder, or the name of a shipped "
                                            "problem (`evoforge problems list`).")]


@group.command("list")
@friendly
def list_problems(json_out: JsonOpt = False) -> None:
    """List the problems evoforge ships; `evoforge run NAME` evolves one."""
    from rich.table import Table

    from service.problems.load import ProblemError, load_problem
    from service.problems.shipped import shipped

    rows = []
    for name, folder in shipped().items():
        try:
            p = load_problem(folder)
            rows.append({"name": name, "metric": p.score_metric, "direction": str(p.direction),
                         "best_known": p.best_known, "description": p.description,
                         "path": str(folder)})
        except ProblemError as exc:
            rows.append({"name": name, "error": str(exc), "path": str(folder)})
    if json_out:
        print(json.dumps(rows))
        return
    table = Table("name", "score", "best known", "description")
    for r in rows:
        first = r.get("description", "").split(". ")[0]  # the first sentence, up to 60 characters
        table.add_row(r["name"], f"{r.get('metric', '?')} ({r.get('direction', '?')})",
                      "" if r.get("best_known") is None else f"{r['best_known']:.6g}",
                      (first[:59] + "…" if len(first) > 60 else first)
                      or f"[red]{r.get('error')}[/]")
    out.print(table)
    if rows:
        out.print(f"in {Path(rows[0]['path']).parent}", highlight=False)


@group.command("check")
@friendly
def check(problem: ProblemArg) -> None:
    """Validate a problem folder and evaluate its initial program; exit 1 on any defect."""
    from service.execution.check import check_problem

    report = check_problem(problem)
    out.print(report.render(), highlight=False, markup=False)
    raise typer.Exit(0 if report.ok else 1)


@group.command("export")
@friendly
def export(problem: ProblemArg,
           dest: Annotated[Path, typer.Argument(metavar="OUT", help="New or empty folder to "
                                                "write.")],
           fmt: Annotated[str, typer.Option("--format", help="Only 'openevolve' (initial "
                                            "program, evaluator.py, config.yaml).")]
           = "openevolve") -> None:
    """Write a problem folder as another system runs it (OpenEvolve: evaluator.py, config.yaml)."""
    from service.problems.export import FORMATS, export_openevolve, openevolve_command, seed_note
    from service.problems.load import load_problem

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}", code=2)
    folder = export_openevolve(problem, dest)
    out.print(f"wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})",
              highlight=False)
    note = seed_note(load_problem(problem))
    if note:
        out.print(f"note: {note}", highlight=False)
    out.print(f"run it with: {openevolve_command(folder)}", highlight=False)
