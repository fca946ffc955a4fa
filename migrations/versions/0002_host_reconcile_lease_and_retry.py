"""host reconcile lease and retry

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21 21:19:40.438606
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table('applies', schema=None) as batch_op:
        batch_op.add_column(sa.Column('worker', sa.String(length=100), nullable=True))
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.add_column(sa.Column('lease_owner', sa.String(length=100), nullable=True))
        batch_op.add_column(sa.Column('lease_until', panel.core.db.UTCDateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('failures', sa.Integer(), server_default='0', nullable=False))
        batch_op.add_column(sa.Column('retry_at', panel.core.db.UTCDateTime(timezone=True), nullable=True))



def downgrade() -> None:
    with op.batch_alter_table('applies', schema=None) as batch_op:
        batch_op.drop_column('worker')
    with op.batch_alter_table('hosts', schema=None) as batch_op:
        batch_op.drop_column('retry_at')
        batch_op.drop_column('failures')
        batch_op.drop_column('lease_until')
        batch_op.drop_column('lease_owner')

