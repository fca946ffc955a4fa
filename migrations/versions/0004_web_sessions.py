"""web panel sessions, preferences and failed logins

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21 23:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        'web_sessions',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key_hash', sa.String(length=64), nullable=False),
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('csrf', sa.String(length=64), nullable=False),
        sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('last_seen_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('expires_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('verified', sa.Boolean(), nullable=False),
        sa.Column('view_as_account_id', sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_sessions_user_id_users'), ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['view_as_account_id'], ['accounts.id'], name=op.f('fk_web_sessions_view_as_account_id_accounts'), ondelete='SET NULL'),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_sessions')),
        sa.UniqueConstraint('key_hash', name=op.f('uq_web_sessions_key_hash')),
    )
    with op.batch_alter_table('web_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_sessions_user_id'), ['user_id'], unique=False)
    op.create_table(
        'web_prefs',
        sa.Column('user_id', sa.Integer(), nullable=False),
        sa.Column('lang', sa.String(length=8), nullable=True),
        sa.Column('totp_secret', sa.String(length=64), nullable=True),
        sa.Column('totp_enabled', sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_web_prefs_user_id_users'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('user_id', name=op.f('pk_web_prefs')),
    )
    op.create_table(
        'web_login_failures',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('key', sa.String(length=300), nullable=False),
        sa.Column('at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_web_login_failures')),
    )
    with op.batch_alter_table('web_login_failures', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_web_login_failures_at'), ['at'], unique=False)
        batch_op.create_index(batch_op.f('ix_web_login_failures_key'), ['key'], unique=False)


def downgrade() -> None:
    op.drop_table('web_login_failures')
    op.drop_table('web_prefs')
    op.drop_table('web_sessions')
