"""objects of plugin-declared kinds

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import panel.core.db

revision: str = '0010'
down_revision: str | None = '0009'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'plugin_objects',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('kind', sa.String(length=40), nullable=False),
        sa.Column('account_id', sa.Integer(), nullable=False),
        sa.Column('host_id', sa.Integer(), nullable=True),
        sa.Column('name', sa.String(length=63), nullable=False),
        sa.Column('spec', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
        sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.Column('status', sa.String(length=16), nullable=False),
        sa.Column('status_reason', sa.String(length=2000), nullable=True),
        sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_plugin_objects_account_id_accounts')),
        sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_plugin_objects_host_id_hosts')),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_plugin_objects')),
    )
    op.create_index('ix_plugin_objects_kind_host_id', 'plugin_objects', ['kind', 'host_id'], unique=False)
    op.create_index('uq_plugin_objects_kind_name', 'plugin_objects', ['kind', 'name'], unique=True)
    op.create_index(op.f('ix_plugin_objects_account_id'), 'plugin_objects', ['account_id'], unique=False)
    op.create_index(op.f('ix_plugin_objects_status'), 'plugin_objects', ['status'], unique=False)


def downgrade() -> None:
    op.drop_index(op.f('ix_plugin_objects_status'), table_name='plugin_objects')
    op.drop_index(op.f('ix_plugin_objects_account_id'), table_name='plugin_objects')
    op.drop_index('uq_plugin_objects_kind_name', table_name='plugin_objects')
    op.drop_index('ix_plugin_objects_kind_host_id', table_name='plugin_objects')
    op.drop_table('plugin_objects')
