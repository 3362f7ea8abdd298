"""The api_tokens migration matches the models (no drift) and downgrades cleanly."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.db import upgrade
from service.db.models import Base
from service.db.session import alembic_config

MINE = ("api_tokens", "owner_token_id", "control")


def test_migrated_schema_matches_the_models_for_tokens_and_owners(pg_url: str) -> None:
    upgrade(pg_url)
    engine = create_engine(pg_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    mine = [d for d in diffs if any(word in repr(d) for word in MINE)]
    assert mine == []
    columns = {c["name"] for c in inspect(engine).get_columns("runs")}
    assert {"owner_token_id", "control"} <= columns
    engine.dispose()


def test_token_migration_downgrades_and_upgrades_again(pg_url: str) -> None:
    upgrade(pg_url, "0003")
    command.downgrade(alembic_config(pg_url), "0002")
    engine = create_engine(pg_url)
    assert "api_tokens" not in inspect(engine).get_table_names()
    engine.dispose()
    upgrade(pg_url)
