"""llm_samples.repair: how the answer parser repaired a completion's form before reading it

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-06 15:00:00

NULL: the answer was read as written. Otherwise the repairs applied, joined with "+" in the order
they were tried (e.g. "strip_prose+drop_cut_line"); see service/edits/repair.py.
"""
import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('llm_samples') as batch:
        batch.add_column(sa.Column('repair', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('llm_samples') as batch:
        batch.drop_column('repair')
