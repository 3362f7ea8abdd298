"""evaluation layers: the sandbox layers each evaluation actually ran under (JSON list, nullable)

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 12:00:00

Idempotent: the column is added only when missing and dropped only when present, so a database
that already has it (a re-run, another branch's copy of this change) upgrades cleanly.
"""
import sqlalchemy as sa
from alembic import op

revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None


def _has_layers() -> bool:
    columns = sa.inspect(op.get_bind()).get_columns('evaluations')
    return any(column['name'] == 'layers' for column in columns)


def upgrade() -> None:
    if not _has_layers():
        with op.batch_alter_table('evaluations') as batch:
            batch.add_column(sa.Column('layers', sa.JSON(), nullable=True))


def downgrade() -> None:
    if _has_layers():
        with op.batch_alter_table('evaluations') as batch:
            batch.drop_column('layers')
