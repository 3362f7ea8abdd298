"""The `evoforge` command: every command group, registered in one place."""

from __future__ import annotations

import typer

from service.cli import (
    db,
    problems,
    run,
    runs,
    service,
    status,
    train,
    trainer,
    verify,
    worker,
)

app = typer.Typer(help="evoforge: LLM-driven evolutionary program search.", no_args_is_help=True,
                  pretty_exceptions_enable=False)
run.register(app)
app.add_typer(runs.group, name="runs")
app.add_typer(problems.group, name="problems")
app.add_typer(db.group, name="db")
for module in (worker, service, status, verify, train, trainer):
    module.register(app)
