"""fencing and idempotent state writes: flow_run.attempt, task_run.attempt, write_id in both state histories.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column('flow_run', sa.Column('attempt', sa.Integer(), server_default='0', nullable=False))
    op.add_column('task_run', sa.Column('attempt', sa.Integer(), server_default='0', nullable=False))
    op.add_column('flow_run_state', sa.Column('write_id', sa.String(length=64), nullable=True))
    op.add_column('task_run_state', sa.Column('write_id', sa.String(length=64), nullable=True))
    op.create_index(op.f('ix_flow_run_state_write_id'), 'flow_run_state', ['write_id'], unique=False)
    op.create_index(op.f('ix_task_run_state_write_id'), 'task_run_state', ['write_id'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_task_run_state_write_id'), table_name='task_run_state')
    op.drop_index(op.f('ix_flow_run_state_write_id'), table_name='flow_run_state')
    with op.batch_alter_table('task_run_state') as batch:
        batch.drop_column('write_id')
    with op.batch_alter_table('flow_run_state') as batch:
        batch.drop_column('write_id')
    with op.batch_alter_table('task_run') as batch:
        batch.drop_column('attempt')
    with op.batch_alter_table('flow_run') as batch:
        batch.drop_column('attempt')
