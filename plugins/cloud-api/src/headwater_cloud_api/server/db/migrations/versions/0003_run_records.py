"""run records: the parent link of child flow runs, the storage's run details, task run artifacts.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None

JSON = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')


def upgrade() -> None:
    op.add_column('flow_run', sa.Column('parent_flow_run_id', sa.String(length=36), nullable=True))
    op.add_column('flow_run', sa.Column('parent_task_slug', sa.String(length=255), nullable=True))
    op.add_column('flow_run', sa.Column('parent_map_index', sa.Integer(), nullable=True))
    op.add_column('flow_run', sa.Column('run_details', JSON, nullable=True))
    op.create_index(op.f('ix_flow_run_parent_flow_run_id'), 'flow_run', ['parent_flow_run_id'], unique=False)
    op.create_table('artifact',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=False),
    sa.Column('task_slug', sa.String(length=255), nullable=True),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('data', JSON, nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_run_id'], ['flow_run.id'], name=op.f('fk_artifact_flow_run_id_flow_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_artifact'))
    )
    op.create_index('ix_artifact_run_created', 'artifact', ['flow_run_id', 'created'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_artifact_run_created', table_name='artifact')
    op.drop_table('artifact')
    op.drop_index(op.f('ix_flow_run_parent_flow_run_id'), table_name='flow_run')
    with op.batch_alter_table('flow_run') as batch:
        batch.drop_column('run_details')
        batch.drop_column('parent_map_index')
        batch.drop_column('parent_task_slug')
        batch.drop_column('parent_flow_run_id')
