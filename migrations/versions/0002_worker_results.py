"""worker-written results: evaluation result payload, delivery counter, queue

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25 17:30:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('evaluations') as batch:
        batch.add_column(sa.Column('result', sa.JSON(), nullable=True))
        batch.add_column(sa.Column('deliveries', sa.Integer(), server_default='0', nullable=False))
        batch.add_column(sa.Column('queue', sa.String(length=64), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('evaluations') as batch:
        batch.drop_column('queue')
        batch.drop_column('deliveries')
        batch.drop_column('result')
