"""Bound parameters for statements built once: one per column, typed as the column."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BindParameter, Table, bindparam


def null_is_null(kind: Any) -> Any:
    """Returns the column type, a JSON one storing None as SQL NULL (as a literal None does)."""
    return JSON(none_as_null=True) if isinstance(kind, JSON) else kind


def bound(table: Table, names: tuple[str, ...], prefix: str = "v_") -> dict[str, BindParameter]:
    """Returns {column: :{prefix}column} for each name, typed as the column (JSON None: NULL)."""
    return {name: bindparam(f"{prefix}{name}", type_=null_is_null(table.c[name].type))
            for name in names}
