"""Migration 0012: stored code hashes become hashes of the compiled code, so a run stored before
finds its duplicates after the upgrade; downgrade brings the old hashes back."""

from __future__ import annotations

import ast
import hashlib
import json

from alembic import command
from sqlalchemy import create_engine, text
from sqlalchemy.orm import Session

from evaluators import tree
from service.db import upgrade
from service.db.models import ProblemRow, RunRow
from service.db.session import alembic_config
from service.edits.identity import code_hash

PROGRAMS = [{tree.SINGLE: "def f(x):\n    return x + 1  # one\n"},
            {tree.SINGLE: "def f(:\n"},
            {"a.py": "x = (1)\n", "b.txt": "some   data\n"}]


def unparsed(files: dict[str, str]) -> str:
    """The hash as evoforge up to 0011 wrote it."""
    def normal(code: str, path: str) -> str:
        try:
            return ast.unparse(ast.parse(code)) if path.endswith(".py") else " ".join(code.split())
        except SyntaxError:
            return " ".join(code.split())
    norm = "\0".join(f"{p}\0{normal(t, p)}" for p, t in sorted(files.items())) \
        if set(files) != {tree.SINGLE} else normal(files[tree.SINGLE], tree.SINGLE)
    return hashlib.sha256(norm.encode()).hexdigest()


def hashes(engine) -> list[str]:
    with engine.connect() as conn:
        return [h for (h,) in conn.execute(text("SELECT code_hash FROM programs ORDER BY id"))]


def test_stored_hashes_follow_the_compiled_code_and_come_back_on_downgrade(db_url: str) -> None:
    upgrade(db_url, "0011")
    engine = create_engine(db_url)
    with Session(engine) as s:
        s.add(ProblemRow(id=1, name="p", path="/p"))
        s.flush()
        s.add(RunRow(id=1, problem_id=1, status="completed", config={}, seed=0))
        s.commit()
    old = [unparsed(files) for files in PROGRAMS]
    with engine.begin() as conn:
        for i, (files, digest) in enumerate(zip(PROGRAMS, old, strict=True)):
            conn.execute(text(
                "INSERT INTO programs (run_id, kind, inspiration_ids, island, generation, "
                "iteration, files, code_hash, status, metrics, features, artifacts, in_archive, "
                "created_at) VALUES (1, 'initial', '[]', 0, 0, :i, :files, :h, 'ok', '{}', '{}', "
                "'{}', false, CURRENT_TIMESTAMP)"),
                {"i": i, "files": json.dumps(files), "h": digest})
    upgrade(db_url)
    new = [code_hash(tree.join(files)) for files in PROGRAMS]
    assert hashes(engine) == new and new[0] != old[0]
    assert new[0] == code_hash("def f(x):\n    return (x+1)\n")  # a reformatted child: a duplicate
    command.downgrade(alembic_config(db_url), "0011")
    assert hashes(engine) == old
    upgrade(db_url)
    upgrade(db_url)  # idempotent
    assert hashes(engine) == new
    engine.dispose()
