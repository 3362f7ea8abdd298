"""search intelligence: per-sample island/temperature/cost/kind and novelty rejections, run cost,
program embeddings, scratchpad versions

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 17:50:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    with op.batch_alter_table('llm_samples') as batch:
        batch.add_column(sa.Column('kind', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('island', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('temperature', sa.Float(), nullable=True))
        batch.add_column(sa.Column('cost', sa.Float(), nullable=True))
        batch.add_column(sa.Column('nearest_program_id', _ID, nullable=True))
        batch.add_column(sa.Column('similarity', sa.Float(), nullable=True))
    with op.batch_alter_table('runs') as batch:
        batch.add_column(sa.Column('cost', sa.Float(), server_default='0', nullable=False))
    op.create_table(
        'program_embeddings',
        sa.Column('program_id', _ID, sa.ForeignKey('programs.id', ondelete='CASCADE'),
                  primary_key=True),
        sa.Column('run_id', _ID, sa.ForeignKey('runs.id', ondelete='CASCADE'), nullable=False),
        sa.Column('model', sa.String(length=200), nullable=False),
        sa.Column('vector', sa.JSON(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_program_embeddings_run_id', 'program_embeddings', ['run_id'])
    op.create_table(
        'scratchpads',
        sa.Column('id', _ID, primary_key=True, autoincrement=True),
        sa.Column('run_id', _ID, sa.ForeignKey('runs.id', ondelete='CASCADE'), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('iteration', sa.Integer(), nullable=False),
        sa.Column('digest', sa.Text(), nullable=False),
        sa.Column('text', sa.Text(), nullable=False),
        sa.Column('model', sa.String(length=300), nullable=False),
        sa.Column('prompt_tokens', sa.Integer(), nullable=False),
        sa.Column('completion_tokens', sa.Integer(), nullable=False),
        sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index('ix_scratchpads_run_id', 'scratchpads', ['run_id'])


def downgrade() -> None:
    op.drop_index('ix_scratchpads_run_id', table_name='scratchpads')
    op.drop_table('scratchpads')
    op.drop_index('ix_program_embeddings_run_id', table_name='program_embeddings')
    op.drop_table('program_embeddings')
    with op.batch_alter_table('runs') as batch:
        batch.drop_column('cost')
    with op.batch_alter_table('llm_samples') as batch:
        for name in ('similarity', 'nearest_program_id', 'cost', 'temperature', 'island', 'kind'):
            batch.drop_column(name)
