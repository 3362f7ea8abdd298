"""adapters: published LoRA adapter versions of a run's mutation model

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 17:55:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        'adapters',
        sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True,
                  nullable=False),
        sa.Column('run_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('base_model', sa.Text(), nullable=False),
        sa.Column('steps', sa.Integer(), nullable=False),
        sa.Column('reward_stats', sa.JSON(), nullable=False),
        sa.Column('path', sa.Text(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_adapters_run_version', 'adapters', ['run_id', 'version'], unique=True)


def downgrade() -> None:
    op.drop_index('ix_adapters_run_version', table_name='adapters')
    op.drop_table('adapters')
