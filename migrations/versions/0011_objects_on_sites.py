"""plugin objects attached to a site

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-07 15:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("plugin_objects") as batch:
        batch.add_column(sa.Column("site_id", sa.Integer(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_plugin_objects_site_id_sites"),
            "sites",
            ["site_id"],
            ["id"],
            ondelete="CASCADE",
        )
        batch.create_index(op.f("ix_plugin_objects_site_id"), ["site_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("plugin_objects") as batch:
        batch.drop_index(op.f("ix_plugin_objects_site_id"))
        batch.drop_constraint(op.f("fk_plugin_objects_site_id_sites"), type_="foreignkey")
        batch.drop_column("site_id")
