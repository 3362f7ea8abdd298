"""fleet: heartbeats of workers and controllers; evaluations indexed by (status, queue)

Revision ID: 0009
Revises: 0007 (at merge: 0008, the sandbox isolation branch's evaluations.layers)
Create Date: 2026-12-08 10:00:00

Idempotent like 0008: the table and the index are created only when missing, so the chain can be
re-linked after 0008 without breaking a database that already has them.
"""
import sqlalchemy as sa
from alembic import op

revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def _inspector() -> sa.Inspector:
    return sa.inspect(op.get_bind())


def upgrade() -> None:
    if 'fleet' not in _inspector().get_table_names():
        op.create_table(
            'fleet',
            sa.Column('id', _ID, autoincrement=True, nullable=False),
            sa.Column('kind', sa.String(length=16), nullable=False),
            sa.Column('name', sa.String(length=200), nullable=False),
            sa.Column('host', sa.String(length=200), nullable=False),
            sa.Column('pid', sa.Integer(), nullable=False),
            sa.Column('queues', sa.JSON(), nullable=False),
            sa.Column('concurrency', sa.Integer(), nullable=False),
            sa.Column('version', sa.String(length=64), nullable=False),
            sa.Column('heartbeat_s', sa.Float(), nullable=False),
            sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
            sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
            sa.Column('stopped_at', sa.DateTime(timezone=True), nullable=True),
            sa.PrimaryKeyConstraint('id'),
            sa.UniqueConstraint('name'),
        )
    indexes = {ix['name'] for ix in _inspector().get_indexes('evaluations')}
    if 'ix_evaluations_status_queue' not in indexes:  # queue depth and age at every scrape
        op.create_index('ix_evaluations_status_queue', 'evaluations', ['status', 'queue'])


def downgrade() -> None:
    indexes = {ix['name'] for ix in _inspector().get_indexes('evaluations')}
    if 'ix_evaluations_status_queue' in indexes:
        op.drop_index('ix_evaluations_status_queue', table_name='evaluations')
    if 'fleet' in _inspector().get_table_names():
        op.drop_table('fleet')
