"""applications: platforms and site apps

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-07 20:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "platforms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False),
        sa.Column("app", sa.String(length=32), nullable=False),
        sa.Column("version", sa.String(length=40), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=500), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_platforms")),
        sa.UniqueConstraint("name", name=op.f("uq_platforms_name")),
    )
    with op.batch_alter_table("platforms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_platforms_app"), ["app"], unique=False)

    op.create_table(
        "site_apps",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("platform_id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=32), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("admin_user", sa.String(length=60), nullable=False),
        sa.Column("admin_email", sa.String(length=254), nullable=False),
        sa.Column("database_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("status_reason", sa.String(length=2000), nullable=True),
        sa.Column("admin_hash", sa.String(length=300), nullable=True),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("installed_at", panel.core.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_site_apps_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["database_id"],
            ["databases.id"],
            name=op.f("fk_site_apps_database_id_databases"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["platform_id"], ["platforms.id"], name=op.f("fk_site_apps_platform_id_platforms")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_site_apps_site_id_sites"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_site_apps")),
        sa.UniqueConstraint("site_id", name=op.f("uq_site_apps_site_id")),
    )
    with op.batch_alter_table("site_apps", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_site_apps_account_id"), ["account_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_site_apps_platform_id"), ["platform_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("site_apps", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_site_apps_platform_id"))
        batch_op.drop_index(batch_op.f("ix_site_apps_account_id"))

    op.drop_table("site_apps")
    with op.batch_alter_table("platforms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_platforms_app"))

    op.drop_table("platforms")
