"""Migration 0011: programs stored as code become maps of files in place, match the model, and
go back to code on downgrade (a folder program's text form)."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from evaluators import tree
from service.db import Database, upgrade
from service.db.models import Base, ProblemRow, ProgramRow, RunRow
from service.db.session import alembic_config

CODE = "# EVOLVE-BLOCK-START\nx = 'it''s'  # quotes survive\n# EVOLVE-BLOCK-END\n"


def test_existing_programs_become_single_file_maps_and_round_trip(db_url: str) -> None:
    upgrade(db_url, "0010")
    engine = create_engine(db_url)
    with Session(engine) as s:  # problems and runs are as the model says at 0010 already
        s.add(ProblemRow(id=1, name="p", path="/p"))
        s.flush()
        s.add(RunRow(id=1, problem_id=1, status="completed", config={}, seed=0))
        s.commit()
    with engine.begin() as conn:
        for i in range(3):
            conn.execute(text(
                "INSERT INTO programs (run_id, kind, inspiration_ids, island, generation, "
                "iteration, code, code_hash, status, metrics, features, artifacts, in_archive, "
                "created_at) VALUES (1, 'initial', '[]', 0, 0, :i, :code, 'h', 'ok', '{}', '{}', "
                "'{}', false, CURRENT_TIMESTAMP)"), {"i": i, "code": CODE + f"# {i}\n"})
    upgrade(db_url)
    with engine.connect() as conn:
        assert [d for d in compare_metadata(MigrationContext.configure(conn), Base.metadata)
                if "programs" in repr(d)] == []
    db = Database(db_url)
    with db.session() as s:
        rows = s.query(ProgramRow).order_by(ProgramRow.id).all()
        assert [r.files for r in rows] == [{tree.SINGLE: CODE + f"# {i}\n"} for i in range(3)]
        assert rows[0].code == CODE + "# 0\n"
        rows[1].files = {"a.py": "x = 1\n", "b.py": "y = 2\n"}
    db.close()
    command.downgrade(alembic_config(db_url), "0010")
    with engine.connect() as conn:
        codes = [c for (c,) in conn.execute(text("SELECT code FROM programs ORDER BY id"))]
    assert codes == [CODE + "# 0\n", tree.join({"a.py": "x = 1\n", "b.py": "y = 2\n"}),
                     CODE + "# 2\n"]
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    engine.dispose()
