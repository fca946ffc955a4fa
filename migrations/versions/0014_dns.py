"""dns: zones' settings and members' records

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 00:05:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dns_zones",
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("hosted", sa.Boolean(), nullable=False),
        sa.Column("dnssec", sa.Boolean(), nullable=False),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dns_zones_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_dns_zones_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("domain_id", name=op.f("pk_dns_zones")),
    )
    with op.batch_alter_table("dns_zones", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dns_zones_account_id"), ["account_id"])
    op.create_table(
        "dns_records",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("type", sa.String(length=8), nullable=False),
        sa.Column("ttl", sa.Integer(), nullable=False),
        sa.Column("data", sa.String(length=4200), nullable=False),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dns_records_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_dns_records_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_records")),
    )
    with op.batch_alter_table("dns_records", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dns_records_account_id"), ["account_id"])
        batch_op.create_index(batch_op.f("ix_dns_records_domain_id"), ["domain_id"])


def downgrade() -> None:
    with op.batch_alter_table("dns_records", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dns_records_domain_id"))
        batch_op.drop_index(batch_op.f("ix_dns_records_account_id"))
    op.drop_table("dns_records")
    with op.batch_alter_table("dns_zones", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dns_zones_account_id"))
    op.drop_table("dns_zones")
