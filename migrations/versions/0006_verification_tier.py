"""verification tier of program scores: tier, verified_score, verify_note, verified_at

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 17:35:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('programs') as batch:
        batch.add_column(sa.Column('tier', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('verified_score', sa.Float(), nullable=True))
        batch.add_column(sa.Column('verify_note', sa.Text(), nullable=True))
        batch.add_column(sa.Column('verified_at', sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('programs') as batch:
        batch.drop_column('verified_at')
        batch.drop_column('verify_note')
        batch.drop_column('verified_score')
        batch.drop_column('tier')
