"""The database layer: models, sessions and queries."""

from service.db.session import Database, SchemaOutOfDate, upgrade

__all__ = ["Database", "SchemaOutOfDate", "upgrade"]
