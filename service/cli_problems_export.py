"""`evoforge problems export PROBLEM OUT`: the problem folder in OpenEvolve's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

out = Console(soft_wrap=True)
err = Console(stderr=True)


def export(problem: Annotated[Path, typer.Argument(help="Problem folder.")],
           dest: Annotated[Path, typer.Argument(metavar="OUT", help="New or empty folder to "
                                                "write.")],
           fmt: Annotated[str, typer.Option("--format", help="Only 'openevolve' (initial "
                                            "program, evaluator.py, config.yaml).")]
           = "openevolve") -> None:
    """Write a problem folder as another system runs it (OpenEvolve: evaluator.py, config.yaml)."""
    from service.problem import ProblemError
    from service.problem_export import FORMATS, export_openevolve, openevolve_command

    if fmt not in FORMATS:
        err.print(f"[bold red]error:[/] --format {fmt!r}: choose one of {', '.join(FORMATS)}",
                  highlight=False)
        raise typer.Exit(2)
    try:
        folder = export_openevolve(problem, dest)
    except ProblemError as exc:
        err.print(f"[bold red]error:[/] {exc}", highlight=False)
        raise typer.Exit(1) from None
    out.print(f"wrote {folder} ({', '.join(sorted(p.name for p in folder.iterdir()))})",
              highlight=False)
    out.print(f"run it with: {openevolve_command(folder)}", highlight=False)


def register(app: typer.Typer) -> None:
    """Adds `export` to the `problems` command group."""
    for group in app.registered_groups:
        if group.name == "problems" and group.typer_instance is not None:
            group.typer_instance.command("export")(export)
            return
    raise RuntimeError("the `problems` command group is missing from the evoforge CLI")
