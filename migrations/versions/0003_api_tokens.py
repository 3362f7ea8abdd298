"""api tokens (hashed, scoped, with a run quota), owners of problems and runs, run control requests

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-25 17:40:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    op.create_table(
        'api_tokens',
        sa.Column('id', _ID, autoincrement=True, nullable=False),
        sa.Column('name', sa.String(length=200), nullable=False),
        sa.Column('token_hash', sa.String(length=64), nullable=False),
        sa.Column('prefix', sa.String(length=16), nullable=False),
        sa.Column('scope', sa.String(length=16), nullable=False),
        sa.Column('max_active_runs', sa.Integer(), nullable=True),
        sa.Column('acts_for', _ID, nullable=True),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
        sa.Column('last_used_at', sa.DateTime(timezone=True), nullable=True),
        sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index('ix_api_tokens_token_hash', 'api_tokens', ['token_hash'], unique=True)
    with op.batch_alter_table('problems') as batch:
        batch.add_column(sa.Column('owner_token_id', _ID, nullable=True))
        batch.create_index('ix_problems_owner_token_id', ['owner_token_id'])
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('owner_token_id', _ID, nullable=True))
        batch.add_column(sa.Column('control', sa.String(length=16), nullable=True))
        batch.create_index('ix_runs_owner_token_id', ['owner_token_id'])


def downgrade() -> None:
    with op.batch_alter_table('runs') as batch:
        batch.drop_index('ix_runs_owner_token_id')
        batch.drop_column('control')
        batch.drop_column('owner_token_id')
    with op.batch_alter_table('problems') as batch:
        batch.drop_index('ix_problems_owner_token_id')
        batch.drop_column('owner_token_id')
    op.drop_index('ix_api_tokens_token_hash', table_name='api_tokens')
    op.drop_table('api_tokens')
