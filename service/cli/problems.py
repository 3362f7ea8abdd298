"""`evoforge problems check` and `problems export`: validate a folder, or write it as OpenEvolve runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from service.cli.common import fail, friendly, out

group = typer.Typer(help="Validate and export problem folders.", no_args_is_help=True)


@group.command("check")
@friendly
def check(problem: Path) -> None:
    """Validate a problem folder and evaluate its initial program; exit 1 on any defect."""
    from service.execution.check import check_problem

    report = check_problem(problem)
    out.print(report.render(), highlight=False, markup=False)
    raise typer.Exit(0 if report.ok else 1)


@group.command("export")
@friendly
def export(problem: Annotated[Path, typer.Argument(help="Problem folder.")],
           dest: Annotated[Path, typer.Argument(metavar="OUT", help="New or empty folder to "
                                                "write.")],
           fmt: Annotated[str, typer.Option("--format", help="Only 'openevolve' (initial "
                                            "program, evaluator.py, config.yaml).")]
           = "openevolve") -> None:
    """Write a problem folder as another system runs it (OpenEvolve: evaluator.py, config.yaml)."""
    from service.problems.export import FORMATS, export_openevolve, openevolve_command

    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: choose one of {', '.join(FORMATS)}", code=2)
    folder = export_openevolve(problem, dest)
    out.print(f"wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})",
              highlight=False)
    out.print(f"run it with: {openevolve_command(folder)}", highlight=False)
