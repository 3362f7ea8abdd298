"""The database: SQLAlchemy models, sessions and migrations, queries, the status enums, stored runs.

May import problems/ (a stored problem is loaded from its folder) and config."""

from service.db.session import Database, SchemaOutOfDate, upgrade

__all__ = ["Database", "SchemaOutOfDate", "upgrade"]
