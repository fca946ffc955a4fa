"""Lifecycle tasks: backups in a backup store, backup schedules, task targets and results

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22 00:02:11.152162
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import panel.core.db

revision: str = '0007'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('backup_schedules',
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('frequency', sa.String(length=16), nullable=False),
    sa.Column('hour', sa.Integer(), nullable=False),
    sa.Column('weekday', sa.Integer(), nullable=False),
    sa.Column('next_run_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('last_task_id', sa.Integer(), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_backup_schedules_account_id_accounts')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_backup_schedules_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('site_id', name=op.f('pk_backup_schedules'))
    )
    with op.batch_alter_table('backup_schedules', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backup_schedules_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backup_schedules_next_run_at'), ['next_run_at'], unique=False)

    op.create_table('backups',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=True),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('path', sa.String(length=500), nullable=False),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('files_bytes', sa.BigInteger(), nullable=False),
    sa.Column('databases', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('task_id', sa.Integer(), nullable=True),
    sa.Column('scheduled', sa.Boolean(), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_backups_account_id_accounts')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_backups_host_id_hosts')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_backups_site_id_sites'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_backups'))
    )
    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_backups_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_backups_host_id'), ['host_id'], unique=False)
        batch_op.create_index('ix_backups_site_id_id', ['site_id', 'id'], unique=False)

    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.add_column(sa.Column('site_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('database_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('user_id', sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column('error', sa.String(length=2000), nullable=True))
        batch_op.add_column(sa.Column('result', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), server_default='{}', nullable=False))
        batch_op.add_column(sa.Column('claimed_until', panel.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_tasks_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_site_id'), ['site_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_site_id'))
        batch_op.drop_index('ix_tasks_account_id_id')
        batch_op.drop_column('claimed_until')
        batch_op.drop_column('result')
        batch_op.drop_column('error')
        batch_op.drop_column('user_id')
        batch_op.drop_column('database_id')
        batch_op.drop_column('site_id')

    with op.batch_alter_table('backups', schema=None) as batch_op:
        batch_op.drop_index('ix_backups_site_id_id')
        batch_op.drop_index(batch_op.f('ix_backups_host_id'))
        batch_op.drop_index(batch_op.f('ix_backups_account_id'))

    op.drop_table('backups')
    with op.batch_alter_table('backup_schedules', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_backup_schedules_next_run_at'))
        batch_op.drop_index(batch_op.f('ix_backup_schedules_account_id'))

    op.drop_table('backup_schedules')
