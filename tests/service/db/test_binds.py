"""Bound parameters typed as their columns: a JSON None is stored as SQL NULL."""

from __future__ import annotations

from sqlalchemy import JSON, Column, Integer, MetaData, Table, create_engine, insert, select, text

from service.db.binds import bound


def test_a_json_none_bound_by_column_is_stored_as_sql_null_and_a_value_as_json():
    table = Table("t", MetaData(), Column("id", Integer, primary_key=True), Column("doc", JSON))
    engine = create_engine("sqlite://")
    table.metadata.create_all(engine)
    statement = insert(table).values(**bound(table, ("id", "doc"), prefix="p_"))
    with engine.begin() as conn:
        conn.execute(statement, [{"p_id": 1, "p_doc": None}, {"p_id": 2, "p_doc": {"a": [1]}}])
        raw = conn.execute(text("SELECT id, doc IS NULL, doc FROM t ORDER BY id")).all()
        assert [tuple(r) for r in raw] == [(1, 1, None), (2, 0, '{"a": [1]}')]
        assert conn.execute(select(table.c.doc).where(table.c.id == 2)).scalar() == {"a": [1]}
