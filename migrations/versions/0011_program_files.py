"""programs.files: a program is a map from relative path to text (programs that are folders)

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-06 18:00:00

Every existing program is converted in place: its `code` becomes {"program.py": code}, the one
path of a single-file program (evaluators/tree.py SINGLE), and the `code` column goes.
Downgrade writes each program's text form back into `code` (a folder's files under their path
headers, evaluators/tree.join).

Idempotent, as every migration here: each step runs only when the column it reads is present.
"""
import sqlalchemy as sa
from alembic import op

from evaluators import tree

revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None

_BATCH = 2000


def _columns() -> set[str]:
    return {c['name'] for c in sa.inspect(op.get_bind()).get_columns('programs')}


def upgrade() -> None:
    if 'files' not in _columns():
        with op.batch_alter_table('programs') as batch:
            batch.add_column(sa.Column('files', sa.JSON(), nullable=True))
    if 'code' in _columns():
        build = ('json_build_object' if op.get_bind().dialect.name == 'postgresql'
                 else 'json_object')
        op.execute(f"UPDATE programs SET files = {build}('{tree.SINGLE}', code) "
                   "WHERE files IS NULL")
        with op.batch_alter_table('programs') as batch:
            batch.drop_column('code')
    with op.batch_alter_table('programs') as batch:
        batch.alter_column('files', existing_type=sa.JSON(), nullable=False)


def downgrade() -> None:
    bind = op.get_bind()
    if 'code' not in _columns():
        with op.batch_alter_table('programs') as batch:
            batch.add_column(sa.Column('code', sa.Text(), nullable=True))
    if 'files' in _columns():
        programs = sa.table('programs', sa.column('id', sa.Integer), sa.column('files', sa.JSON),
                            sa.column('code', sa.Text))
        last = -1
        while True:
            rows = bind.execute(sa.select(programs.c.id, programs.c.files)
                                .where(programs.c.id > last).order_by(programs.c.id)
                                .limit(_BATCH)).all()
            if not rows:
                break
            bind.execute(programs.update().where(programs.c.id == sa.bindparam('pid'))
                         .values(code=sa.bindparam('text')),
                         [{'pid': pid, 'text': tree.join(files or {})} for pid, files in rows])
            last = rows[-1][0]
        with op.batch_alter_table('programs') as batch:
            batch.drop_column('files')
    with op.batch_alter_table('programs') as batch:
        batch.alter_column('code', existing_type=sa.Text(), nullable=False)
