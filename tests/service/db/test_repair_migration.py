"""Migration 0010: llm_samples.repair matches the model, and downgrades and upgrades again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect

from service.db import upgrade
from service.db.models import Base
from service.db.session import alembic_config


def _columns(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return {c["name"] for c in inspect(engine).get_columns("llm_samples")}
    finally:
        engine.dispose()


def test_sample_repair_column_matches_the_model_and_round_trips_the_migration(
        db_url: str) -> None:
    upgrade(db_url)
    engine = create_engine(db_url)
    with engine.connect() as conn:
        diffs = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert [d for d in diffs if "repair" in repr(d)] == []
    assert "repair" in _columns(db_url)
    command.downgrade(alembic_config(db_url), "0009")
    assert "repair" not in _columns(db_url)
    upgrade(db_url)
    assert "repair" in _columns(db_url)
