"""initial schema: projects, flows (version groups), flow runs and task runs with state history, logs, agents, API keys, key-value store.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-22
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('agent',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('accepts_unlabeled', sa.Boolean(), nullable=False),
    sa.Column('type', sa.String(length=64), nullable=True),
    sa.Column('last_seen', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_agent'))
    )
    op.create_table('api_key',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('key_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key')),
    sa.UniqueConstraint('key_hash', name=op.f('uq_api_key_key_hash')),
    sa.UniqueConstraint('name', name=op.f('uq_api_key_name'))
    )
    op.create_table('key_value',
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('value', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('key', name=op.f('pk_key_value'))
    )
    op.create_table('project',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_project')),
    sa.UniqueConstraint('name', name=op.f('uq_project_name'))
    )
    op.create_table('flow_group',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('schedule_active', sa.Boolean(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_flow_group_project_id_project'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_group')),
    sa.UniqueConstraint('project_id', 'name', name='uq_flow_group_project_name')
    )
    with op.batch_alter_table('flow_group', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_group_project_id'), ['project_id'], unique=False)

    op.create_table('flow',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('flow_group_id', sa.String(length=36), nullable=False),
    sa.Column('project_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('archived', sa.Boolean(), nullable=False),
    sa.Column('metadata_hash', sa.String(length=128), nullable=False),
    sa.Column('serialized', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_group_id'], ['flow_group.id'], name=op.f('fk_flow_flow_group_id_flow_group'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['project_id'], ['project.id'], name=op.f('fk_flow_project_id_project'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow')),
    sa.UniqueConstraint('flow_group_id', 'version', name='uq_flow_group_version')
    )
    with op.batch_alter_table('flow', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_flow_group_id'), ['flow_group_id'], unique=False)
        batch_op.create_index('ix_flow_group_hash', ['flow_group_id', 'metadata_hash'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_name'), ['name'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_project_id'), ['project_id'], unique=False)

    op.create_table('flow_run',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('flow_id', sa.String(length=36), nullable=False),
    sa.Column('flow_group_id', sa.String(length=36), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('parameters', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('context', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('labels', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('run_config', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('idempotency_key', sa.String(length=255), nullable=True),
    sa.Column('auto_scheduled', sa.Boolean(), nullable=False),
    sa.Column('scheduled_start_time', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('state_message', sa.Text(), nullable=True),
    sa.Column('state_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('agent_id', sa.String(length=36), nullable=True),
    sa.Column('heartbeat', sa.DateTime(timezone=True), nullable=True),
    sa.Column('times_resurrected', sa.Integer(), nullable=False),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_group_id'], ['flow_group.id'], name=op.f('fk_flow_run_flow_group_id_flow_group'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['flow_id'], ['flow.id'], name=op.f('fk_flow_run_flow_id_flow'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_run')),
    sa.UniqueConstraint('flow_id', 'idempotency_key', name='uq_flow_run_idempotency')
    )
    with op.batch_alter_table('flow_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_run_agent_id'), ['agent_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_run_flow_group_id'), ['flow_group_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_flow_run_flow_id'), ['flow_id'], unique=False)
        batch_op.create_index('ix_flow_run_state_start', ['state', 'scheduled_start_time'], unique=False)

    op.create_table('flow_run_state',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('serialized', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_run_id'], ['flow_run.id'], name=op.f('fk_flow_run_state_flow_run_id_flow_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_flow_run_state')),
    sa.UniqueConstraint('flow_run_id', 'version', name='uq_flow_run_state_version')
    )
    with op.batch_alter_table('flow_run_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_flow_run_state_flow_run_id'), ['flow_run_id'], unique=False)

    op.create_table('log',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=False),
    sa.Column('task_run_id', sa.String(length=36), nullable=True),
    sa.Column('level', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=255), nullable=True),
    sa.Column('message', sa.Text(), nullable=False),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_run_id'], ['flow_run.id'], name=op.f('fk_log_flow_run_id_flow_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_log'))
    )
    with op.batch_alter_table('log', schema=None) as batch_op:
        batch_op.create_index('ix_log_run_time', ['flow_run_id', 'timestamp'], unique=False)

    op.create_table('task_run',
    sa.Column('id', sa.String(length=36), nullable=False),
    sa.Column('flow_run_id', sa.String(length=36), nullable=False),
    sa.Column('task_slug', sa.String(length=255), nullable=False),
    sa.Column('map_index', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('state_message', sa.Text(), nullable=True),
    sa.Column('state_timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('start_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('end_time', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['flow_run_id'], ['flow_run.id'], name=op.f('fk_task_run_flow_run_id_flow_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_run')),
    sa.UniqueConstraint('flow_run_id', 'task_slug', 'map_index', name='uq_task_run_slug_index')
    )
    with op.batch_alter_table('task_run', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_run_flow_run_id'), ['flow_run_id'], unique=False)

    op.create_table('task_run_state',
    sa.Column('id', sa.Integer(), autoincrement=True, nullable=False),
    sa.Column('task_run_id', sa.String(length=36), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=32), nullable=False),
    sa.Column('message', sa.Text(), nullable=True),
    sa.Column('serialized', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=True),
    sa.Column('timestamp', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['task_run_id'], ['task_run.id'], name=op.f('fk_task_run_state_task_run_id_task_run'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_task_run_state')),
    sa.UniqueConstraint('task_run_id', 'version', name='uq_task_run_state_version')
    )
    with op.batch_alter_table('task_run_state', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_task_run_state_task_run_id'), ['task_run_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('task_run_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_run_state_task_run_id'))

    op.drop_table('task_run_state')
    with op.batch_alter_table('task_run', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_task_run_flow_run_id'))

    op.drop_table('task_run')
    with op.batch_alter_table('log', schema=None) as batch_op:
        batch_op.drop_index('ix_log_run_time')

    op.drop_table('log')
    with op.batch_alter_table('flow_run_state', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flow_run_state_flow_run_id'))

    op.drop_table('flow_run_state')
    with op.batch_alter_table('flow_run', schema=None) as batch_op:
        batch_op.drop_index('ix_flow_run_state_start')
        batch_op.drop_index(batch_op.f('ix_flow_run_flow_id'))
        batch_op.drop_index(batch_op.f('ix_flow_run_flow_group_id'))
        batch_op.drop_index(batch_op.f('ix_flow_run_agent_id'))

    op.drop_table('flow_run')
    with op.batch_alter_table('flow', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flow_project_id'))
        batch_op.drop_index(batch_op.f('ix_flow_name'))
        batch_op.drop_index('ix_flow_group_hash')
        batch_op.drop_index(batch_op.f('ix_flow_flow_group_id'))

    op.drop_table('flow')
    with op.batch_alter_table('flow_group', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_flow_group_project_id'))

    op.drop_table('flow_group')
    op.drop_table('project')
    op.drop_table('key_value')
    op.drop_table('api_key')
    op.drop_table('agent')
