"""`evoforge db upgrade`: apply the Alembic migrations."""

from __future__ import annotations

import typer

from service.cli.common import DbOpt, err, friendly, settings_for
from service.db import upgrade

group = typer.Typer(help="Database schema (Alembic migrations).", no_args_is_help=True)


@group.command("upgrade")
@friendly
def db_upgrade(db: DbOpt = None) -> None:
    """Apply Alembic migrations to the database."""
    url = settings_for(db).database_url()
    upgrade(url)
    err.print(f"database at head: {url}")
