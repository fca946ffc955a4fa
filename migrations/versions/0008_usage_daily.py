"""usage rolled up per day

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22 00:15:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = '0008'
down_revision: str | None = '0007'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'usage_daily',
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('metric', sa.String(length=32), nullable=False),
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('object_type', sa.String(length=32), nullable=False),
        sa.Column('object_id', sa.Integer(), nullable=False),
        sa.Column('samples', sa.Integer(), nullable=False),
        sa.Column('total', sa.BigInteger(), nullable=False),
        sa.Column('peak', sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_usage_daily_account_id_accounts')),
        sa.PrimaryKeyConstraint('account_id', 'metric', 'day', 'object_type', 'object_id', name=op.f('pk_usage_daily')),
    )
    op.create_table(
        'usage_rollups',
        sa.Column('day', sa.Date(), nullable=False),
        sa.Column('done_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('day', name=op.f('pk_usage_rollups')),
    )


def downgrade() -> None:
    op.drop_table('usage_rollups')
    op.drop_table('usage_daily')
