"""applications: inventory of every site's app, automatic updates in a maintenance window

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-07 23:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import panel.core.db

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "app_inventory",
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("app", sa.String(length=32), nullable=True),
        sa.Column("version", sa.String(length=40), nullable=True),
        sa.Column("scanned_at", panel.core.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_app_inventory_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_app_inventory_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("site_id", name=op.f("pk_app_inventory")),
    )
    with op.batch_alter_table("app_inventory", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_app_inventory_account_id"), ["account_id"])
        batch_op.create_index(batch_op.f("ix_app_inventory_app"), ["app"])

    with op.batch_alter_table("platforms", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("auto_update", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("window_weekday", sa.Integer(), nullable=True))
        batch_op.add_column(
            sa.Column("window_hour", sa.Integer(), nullable=False, server_default="3")
        )
        batch_op.add_column(
            sa.Column("window_hours", sa.Integer(), nullable=False, server_default="2")
        )
    with op.batch_alter_table("site_apps", schema=None) as batch_op:
        batch_op.add_column(sa.Column("refused_platform_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_site_apps_refused_platform_id_platforms"),
            "platforms",
            ["refused_platform_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("site_apps", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_site_apps_refused_platform_id_platforms"), type_="foreignkey"
        )
        batch_op.drop_column("refused_platform_id")
    with op.batch_alter_table("platforms", schema=None) as batch_op:
        batch_op.drop_column("window_hours")
        batch_op.drop_column("window_hour")
        batch_op.drop_column("window_weekday")
        batch_op.drop_column("auto_update")
    with op.batch_alter_table("app_inventory", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_app_inventory_app"))
        batch_op.drop_index(batch_op.f("ix_app_inventory_account_id"))
    op.drop_table("app_inventory")
