"""usage collection state: cursors per host, storage per account

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'host_usage',
        sa.Column('host_id', sa.Integer(), nullable=False),
        sa.Column('cursors', panel.core.db.JSONType, nullable=False),
        sa.Column('collected_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('seconds', sa.Double(), nullable=True),
        sa.Column('error', sa.Text(), nullable=True),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('retry_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_host_usage_host_id_hosts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('host_id', name=op.f('pk_host_usage')),
    )
    op.create_table(
        'account_usage',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('disk_bytes', sa.BigInteger(), nullable=False),
        sa.Column('parts', panel.core.db.JSONType, nullable=False),
        sa.Column('over_quota_since', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('suspended_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_account_usage_account_id_accounts'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('account_id', name=op.f('pk_account_usage')),
    )
    with op.batch_alter_table('usage_samples', schema=None) as batch_op:
        batch_op.create_index('ix_usage_samples_metric_time', ['metric', 'time'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('usage_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_samples_metric_time')
    op.drop_table('account_usage')
    op.drop_table('host_usage')
