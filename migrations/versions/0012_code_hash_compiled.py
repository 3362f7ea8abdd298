"""programs.code_hash: the hash of the compiled code (service/edits/identity.py), not of ast.unparse

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-06 21:00:00

A program's code hash (deduplication) was the sha256 of its text as ast.unparse prints it; it is
now the sha256 of its compiled form, about 4x cheaper to make per child. Stored hashes are
recomputed with the code's current definition, so a run stored before finds its duplicates after
the upgrade. Downgrade recomputes them the old way (the definition is kept below).

Idempotent, as every migration here: it recomputes every hash from the program's files.
"""
import ast
import hashlib
import warnings
from collections.abc import Callable

import sqlalchemy as sa
from alembic import op

from evaluators import tree
from service.edits.identity import code_hash

revision = '0012'
down_revision = '0011'
branch_labels = None
depends_on = None

_BATCH = 2000


def _unparsed_hash(code: str) -> str:
    """The code hash up to revision 0011: sha256 of each file's ast.unparse text."""
    def normal(text: str, path: str) -> str:
        if path.endswith('.py'):
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter('ignore')
                    return ast.unparse(ast.parse(text))
            except (SyntaxError, ValueError, RecursionError, MemoryError):
                pass
        return ' '.join(text.split())

    if tree.is_tree(code):
        norm = '\0'.join(f'{path}\0{normal(text, path)}'
                         for path, text in sorted(tree.split(code).items()))
    else:
        norm = normal(code, tree.SINGLE)
    return hashlib.sha256(norm.encode()).hexdigest()


def _rehash(hash_of: Callable[[str], str]) -> None:
    bind = op.get_bind()
    programs = sa.table('programs', sa.column('id', sa.Integer), sa.column('files', sa.JSON),
                        sa.column('code_hash', sa.String))
    last = -1
    while True:
        rows = bind.execute(sa.select(programs.c.id, programs.c.files)
                            .where(programs.c.id > last).order_by(programs.c.id)
                            .limit(_BATCH)).all()
        if not rows:
            break
        bind.execute(programs.update().where(programs.c.id == sa.bindparam('pid'))
                     .values(code_hash=sa.bindparam('digest')),
                     [{'pid': pid, 'digest': hash_of(tree.join(files or {}))}
                      for pid, files in rows])
        last = rows[-1][0]


def upgrade() -> None:
    _rehash(code_hash)


def downgrade() -> None:
    _rehash(_unparsed_hash)
