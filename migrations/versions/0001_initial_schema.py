"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-21 21:07:18.277888
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql
import panel.core.db

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('accounts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('slug', sa.String(length=31), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('quotas', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_accounts')),
    sa.UniqueConstraint('slug', name=op.f('uq_accounts_slug'))
    )
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_accounts_status'), ['status'], unique=False)

    op.create_table('hosts',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('address', sa.String(length=253), nullable=False),
    sa.Column('ssh_port', sa.Integer(), nullable=False),
    sa.Column('ssh_user', sa.String(length=32), nullable=False),
    sa.Column('host_key', sa.String(length=2000), nullable=False),
    sa.Column('roles', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('settings', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('health', sa.String(length=16), nullable=False),
    sa.Column('health_reason', sa.String(length=2000), nullable=True),
    sa.Column('desired_generation', sa.BigInteger(), nullable=False),
    sa.Column('applied_generation', sa.BigInteger(), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_hosts')),
    sa.UniqueConstraint('name', name=op.f('uq_hosts_name'))
    )
    op.create_table('users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('email', sa.String(length=254), nullable=False),
    sa.Column('name', sa.String(length=200), nullable=False),
    sa.Column('password_hash', sa.String(length=200), nullable=True),
    sa.Column('is_staff', sa.Boolean(), nullable=False),
    sa.Column('is_active', sa.Boolean(), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_users')),
    sa.UniqueConstraint('email', name=op.f('uq_users_email'))
    )
    op.create_table('api_tokens',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=100), nullable=False),
    sa.Column('token_hash', sa.String(length=64), nullable=False),
    sa.Column('prefix', sa.String(length=16), nullable=False),
    sa.Column('scopes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('expires_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('last_used_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('revoked_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_api_tokens_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_tokens')),
    sa.UniqueConstraint('token_hash', name=op.f('uq_api_tokens_token_hash'))
    )
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_api_tokens_user_id'), ['user_id'], unique=False)

    op.create_table('applies',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('generation', sa.BigInteger(), nullable=False),
    sa.Column('started_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('finished_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('result', sa.String(length=16), nullable=False),
    sa.Column('diff', sa.Text(), nullable=False),
    sa.Column('log', sa.Text(), nullable=False),
    sa.Column('error', sa.Text(), nullable=True),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_applies_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_applies'))
    )
    with op.batch_alter_table('applies', schema=None) as batch_op:
        batch_op.create_index('ix_applies_host_id_id', ['host_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_applies_result'), ['result'], unique=False)

    op.create_table('database_users',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_database_users_account_id_accounts')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_database_users_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_database_users')),
    sa.UniqueConstraint('engine', 'name', name=op.f('uq_database_users_engine_name'))
    )
    with op.batch_alter_table('database_users', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_database_users_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_database_users_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_database_users_status'), ['status'], unique=False)

    op.create_table('databases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('engine', sa.String(length=16), nullable=False),
    sa.Column('name', sa.String(length=63), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_databases_account_id_accounts')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_databases_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_databases')),
    sa.UniqueConstraint('engine', 'name', name=op.f('uq_databases_engine_name'))
    )
    with op.batch_alter_table('databases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_databases_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_databases_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_databases_status'), ['status'], unique=False)

    op.create_table('domains',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_domains_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_domains')),
    sa.UniqueConstraint('name', name=op.f('uq_domains_name'))
    )
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domains_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_domains_status'), ['status'], unique=False)

    op.create_table('idempotency_records',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('key', sa.String(length=200), nullable=False),
    sa.Column('fingerprint', sa.String(length=64), nullable=False),
    sa.Column('status_code', sa.Integer(), nullable=False),
    sa.Column('response', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_idempotency_records_user_id_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_idempotency_records')),
    sa.UniqueConstraint('user_id', 'key', name=op.f('uq_idempotency_records_user_id_key'))
    )
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_idempotency_records_created_at'), ['created_at'], unique=False)

    op.create_table('memberships',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=16), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_memberships_account_id_accounts')),
    sa.ForeignKeyConstraint(['user_id'], ['users.id'], name=op.f('fk_memberships_user_id_users')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_memberships')),
    sa.UniqueConstraint('account_id', 'user_id', name=op.f('uq_memberships_account_id_user_id'))
    )
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_memberships_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_memberships_user_id'), ['user_id'], unique=False)

    op.create_table('tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('params', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('progress', sa.Integer(), nullable=False),
    sa.Column('log', sa.Text(), nullable=False),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('started_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.Column('finished_at', panel.core.db.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_tasks_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tasks'))
    )
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_tasks_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_tasks_status'), ['status'], unique=False)

    op.create_table('usage_samples',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('metric', sa.String(length=32), nullable=False),
    sa.Column('value', sa.BigInteger(), nullable=False),
    sa.Column('time', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_usage_samples_account_id_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_usage_samples'))
    )
    with op.batch_alter_table('usage_samples', schema=None) as batch_op:
        batch_op.create_index('ix_usage_samples_account_metric_time', ['account_id', 'metric', 'time'], unique=False)

    op.create_table('audit_events',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('time', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('actor_user_id', sa.Integer(), nullable=True),
    sa.Column('actor_email', sa.String(length=254), nullable=True),
    sa.Column('token_id', sa.Integer(), nullable=True),
    sa.Column('client_addr', sa.String(length=64), nullable=True),
    sa.Column('action', sa.String(length=32), nullable=False),
    sa.Column('object_type', sa.String(length=32), nullable=False),
    sa.Column('object_id', sa.Integer(), nullable=True),
    sa.Column('account_id', sa.Integer(), nullable=True),
    sa.Column('changes', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_audit_events_account_id_accounts')),
    sa.ForeignKeyConstraint(['actor_user_id'], ['users.id'], name=op.f('fk_audit_events_actor_user_id_users'), ondelete='SET NULL'),
    sa.ForeignKeyConstraint(['token_id'], ['api_tokens.id'], name=op.f('fk_audit_events_token_id_api_tokens'), ondelete='SET NULL'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_events'))
    )
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.create_index('ix_audit_events_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_events_time'), ['time'], unique=False)

    op.create_table('database_grants',
    sa.Column('user_id', sa.Integer(), nullable=False),
    sa.Column('database_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['database_id'], ['databases.id'], name=op.f('fk_database_grants_database_id_databases'), ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['user_id'], ['database_users.id'], name=op.f('fk_database_grants_user_id_database_users'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('user_id', 'database_id', name=op.f('pk_database_grants'))
    )
    with op.batch_alter_table('database_grants', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_database_grants_database_id'), ['database_id'], unique=False)

    op.create_table('mail_aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('destinations', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_mail_aliases_account_id_accounts')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_mail_aliases_domain_id_domains')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_mail_aliases_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mail_aliases')),
    sa.UniqueConstraint('address', name=op.f('uq_mail_aliases_address'))
    )
    with op.batch_alter_table('mail_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mail_aliases_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_aliases_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_aliases_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mail_aliases_status'), ['status'], unique=False)

    op.create_table('mailboxes',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('password_hash', sa.String(length=300), nullable=False),
    sa.Column('quota_mb', sa.Integer(), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_mailboxes_account_id_accounts')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_mailboxes_domain_id_domains')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_mailboxes_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailboxes')),
    sa.UniqueConstraint('address', name=op.f('uq_mailboxes_address'))
    )
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailboxes_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailboxes_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailboxes_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailboxes_status'), ['status'], unique=False)

    op.create_table('mailing_lists',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('address', sa.String(length=320), nullable=False),
    sa.Column('owners', sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), 'postgresql'), nullable=False),
    sa.Column('policy', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_mailing_lists_account_id_accounts')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_mailing_lists_domain_id_domains')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_mailing_lists_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_mailing_lists')),
    sa.UniqueConstraint('address', name=op.f('uq_mailing_lists_address'))
    )
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_mailing_lists_account_id'), ['account_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailing_lists_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailing_lists_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_mailing_lists_status'), ['status'], unique=False)

    op.create_table('sites',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('account_id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('host_id', sa.Integer(), nullable=False),
    sa.Column('domain', sa.String(length=253), nullable=False),
    sa.Column('document_root', sa.String(length=200), nullable=False),
    sa.Column('php', sa.String(length=8), nullable=True),
    sa.Column('https', sa.String(length=16), nullable=False),
    sa.Column('enabled', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_reason', sa.String(length=2000), nullable=True),
    sa.Column('created_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('updated_at', panel.core.db.UTCDateTime(timezone=True), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['accounts.id'], name=op.f('fk_sites_account_id_accounts')),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_sites_domain_id_domains')),
    sa.ForeignKeyConstraint(['host_id'], ['hosts.id'], name=op.f('fk_sites_host_id_hosts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_sites')),
    sa.UniqueConstraint('domain', name=op.f('uq_sites_domain'))
    )
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.create_index('ix_sites_account_id_id', ['account_id', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sites_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sites_host_id'), ['host_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sites_status'), ['status'], unique=False)

    op.create_table('site_aliases',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('name', sa.String(length=253), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domains.id'], name=op.f('fk_site_aliases_domain_id_domains')),
    sa.ForeignKeyConstraint(['site_id'], ['sites.id'], name=op.f('fk_site_aliases_site_id_sites'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_site_aliases')),
    sa.UniqueConstraint('name', name=op.f('uq_site_aliases_name'))
    )
    with op.batch_alter_table('site_aliases', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_site_aliases_domain_id'), ['domain_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_site_aliases_site_id'), ['site_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('site_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_site_aliases_site_id'))
        batch_op.drop_index(batch_op.f('ix_site_aliases_domain_id'))

    op.drop_table('site_aliases')
    with op.batch_alter_table('sites', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sites_status'))
        batch_op.drop_index(batch_op.f('ix_sites_host_id'))
        batch_op.drop_index(batch_op.f('ix_sites_domain_id'))
        batch_op.drop_index('ix_sites_account_id_id')

    op.drop_table('sites')
    with op.batch_alter_table('mailing_lists', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailing_lists_status'))
        batch_op.drop_index(batch_op.f('ix_mailing_lists_host_id'))
        batch_op.drop_index(batch_op.f('ix_mailing_lists_domain_id'))
        batch_op.drop_index(batch_op.f('ix_mailing_lists_account_id'))

    op.drop_table('mailing_lists')
    with op.batch_alter_table('mailboxes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mailboxes_status'))
        batch_op.drop_index(batch_op.f('ix_mailboxes_host_id'))
        batch_op.drop_index(batch_op.f('ix_mailboxes_domain_id'))
        batch_op.drop_index(batch_op.f('ix_mailboxes_account_id'))

    op.drop_table('mailboxes')
    with op.batch_alter_table('mail_aliases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_mail_aliases_status'))
        batch_op.drop_index(batch_op.f('ix_mail_aliases_host_id'))
        batch_op.drop_index(batch_op.f('ix_mail_aliases_domain_id'))
        batch_op.drop_index(batch_op.f('ix_mail_aliases_account_id'))

    op.drop_table('mail_aliases')
    with op.batch_alter_table('database_grants', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_database_grants_database_id'))

    op.drop_table('database_grants')
    with op.batch_alter_table('audit_events', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_events_time'))
        batch_op.drop_index('ix_audit_events_account_id_id')

    op.drop_table('audit_events')
    with op.batch_alter_table('usage_samples', schema=None) as batch_op:
        batch_op.drop_index('ix_usage_samples_account_metric_time')

    op.drop_table('usage_samples')
    with op.batch_alter_table('tasks', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_tasks_status'))
        batch_op.drop_index(batch_op.f('ix_tasks_account_id'))

    op.drop_table('tasks')
    with op.batch_alter_table('memberships', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_memberships_user_id'))
        batch_op.drop_index(batch_op.f('ix_memberships_account_id'))

    op.drop_table('memberships')
    with op.batch_alter_table('idempotency_records', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_idempotency_records_created_at'))

    op.drop_table('idempotency_records')
    with op.batch_alter_table('domains', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_domains_status'))
        batch_op.drop_index(batch_op.f('ix_domains_account_id'))

    op.drop_table('domains')
    with op.batch_alter_table('databases', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_databases_status'))
        batch_op.drop_index(batch_op.f('ix_databases_host_id'))
        batch_op.drop_index(batch_op.f('ix_databases_account_id'))

    op.drop_table('databases')
    with op.batch_alter_table('database_users', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_database_users_status'))
        batch_op.drop_index(batch_op.f('ix_database_users_host_id'))
        batch_op.drop_index(batch_op.f('ix_database_users_account_id'))

    op.drop_table('database_users')
    with op.batch_alter_table('applies', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_applies_result'))
        batch_op.drop_index('ix_applies_host_id_id')

    op.drop_table('applies')
    with op.batch_alter_table('api_tokens', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_api_tokens_user_id'))

    op.drop_table('api_tokens')
    op.drop_table('users')
    op.drop_table('hosts')
    with op.batch_alter_table('accounts', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_accounts_status'))

    op.drop_table('accounts')
