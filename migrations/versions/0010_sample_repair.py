"""llm_samples.repair: how the answer parser repaired a completion's form before reading it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00

NULL: the answer was read as written. Otherwise the repairs applied, joined with "+" in the order
they were tried (e.g. "strip_prose+drop_cut_line"); see service/edits/repair.py.

Idempotent, as every migration here: the column is added only when missing and dropped only when
present (a re-run, a database stamped behind its schema).
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def _has_repair() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns('llm_samples')
    return any(column['name'] == 'repair' for column in columns)


def upgrade() -> None:
    if not _has_repair():
        with op.batch_alter_table('llm_samples') as batch:
            batch.add_column(sa.Column('repair', sa.String(length=64), nullable=True))


def downgrade() -> None:
    if _has_repair():
        with op.batch_alter_table('llm_samples') as batch:
            batch.drop_column('repair')
