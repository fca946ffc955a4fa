"""dkim: mail domains' DKIM keys (the public parts; the private ones stay on the hosts)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-08 00:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dkim_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("host_id", sa.Integer(), nullable=False),
        sa.Column("selector", sa.String(length=63), nullable=False),
        sa.Column("public_key", sa.String(length=1000), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("activated_at", panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("retire_after", panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_dkim_keys_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_dkim_keys_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["host_id"], ["hosts.id"], name=op.f("fk_dkim_keys_host_id_hosts"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dkim_keys")),
        sa.UniqueConstraint("domain_id", "selector", name=op.f("uq_dkim_keys_domain_id_selector")),
    )
    with op.batch_alter_table("dkim_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dkim_keys_account_id"), ["account_id"])
        batch_op.create_index(batch_op.f("ix_dkim_keys_domain_id"), ["domain_id"])
        batch_op.create_index(batch_op.f("ix_dkim_keys_host_id"), ["host_id"])


def downgrade() -> None:
    with op.batch_alter_table("dkim_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dkim_keys_host_id"))
        batch_op.drop_index(batch_op.f("ix_dkim_keys_domain_id"))
        batch_op.drop_index(batch_op.f("ix_dkim_keys_account_id"))
    op.drop_table("dkim_keys")
