"""dns: ACME DNS-01 answers in zones

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-08 00:25:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "dns_challenges",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("domain_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("value", sa.String(length=100), nullable=False),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["domain_id"],
            ["domains.id"],
            name=op.f("fk_dns_challenges_domain_id_domains"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dns_challenges")),
    )
    with op.batch_alter_table("dns_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dns_challenges_domain_id"), ["domain_id"])


def downgrade() -> None:
    with op.batch_alter_table("dns_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dns_challenges_domain_id"))
    op.drop_table("dns_challenges")
