"""rl_rounds: external training rounds, claimed by `evoforge trainer` processes under a lease

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 20:45:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'rl_rounds',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('run_id', _ID, nullable=False),
        sa.Column('number', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('evaluations', sa.Integer(), nullable=False),
        sa.Column('steps', sa.Integer(), nullable=False),
        sa.Column('trainer', sa.String(length=200), nullable=True),
        sa.Column('lease_expires_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('adapter_id', _ID, nullable=True),
        sa.Column('served_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['run_id'], ['runs.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_rl_rounds_run_number', 'rl_rounds', ['run_id', 'number'], unique=True)
    op.create_index('ix_rl_rounds_status', 'rl_rounds', ['status'])


def downgrade() -> None:
    op.drop_index('ix_rl_rounds_status', table_name='rl_rounds')
    op.drop_index('ix_rl_rounds_run_number', table_name='rl_rounds')
    op.drop_table('rl_rounds')
