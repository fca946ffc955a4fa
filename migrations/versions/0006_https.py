"""HTTPS: a site's redirect flag, its certificate and ACME state, the panel's ACME accounts

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-22 00:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import panel.core.db

revision: str = '0006'
down_revision: str | None = '0005'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    json_type = sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql')
    op.create_table(
        'acme_accounts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('directory', sa.String(length=500), nullable=False),
        sa.Column('key_sealed', sa.Text(), nullable=False),
        sa.Column('uri', sa.String(length=500), nullable=True),
        sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint('id', name=op.f('pk_acme_accounts')),
        sa.UniqueConstraint('directory', name=op.f('uq_acme_accounts_directory')),
    )
    op.create_table(
        'site_certificates',
        sa.Column('site_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=16), nullable=True),
        sa.Column('chain_pem', sa.Text(), nullable=True),
        sa.Column('key_name', sa.String(length=64), nullable=True),
        sa.Column('key_sealed', sa.Text(), nullable=True),
        sa.Column('names', json_type, nullable=False),
        sa.Column('serial', sa.String(length=64), nullable=True),
        sa.Column('issuer', sa.String(length=300), nullable=True),
        sa.Column('not_before', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('not_after', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('renew_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('acme_state', sa.String(length=16), nullable=True),
        sa.Column('reason', sa.String(length=2000), nullable=True),
        sa.Column('failures', sa.Integer(), server_default='0', nullable=False),
        sa.Column('retry_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('renew_requested', sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column('claimed_until', panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_site_certificates_site_id_sites'), ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('site_id', name=op.f('pk_site_certificates')),
    )
    with op.batch_alter_table('site_certificates', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_certificates_renew_at'), ['renew_at'], unique=False)
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.add_column(sa.Column('https_redirect', sa.Boolean(), server_default=sa.true(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_column('https_redirect')
    with op.batch_alter_table('site_certificates', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_certificates_renew_at'))
    op.drop_table('site_certificates')
    op.drop_table('acme_accounts')
