"""Objects of plugin-declared kinds, which the panel stores for their plugins."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Reconciled


class PluginObject(Base, Reconciled):
    """One object of a kind a plugin declares with a spec (``provisioners.api.ObjectKind``):
    the panel keeps its account, placement, status and version; ``spec`` is the plugin's
    own model, validated at the API boundary and again when a host's state is read."""

    __tablename__ = "plugin_objects"
    __table_args__ = (
        Index("uq_plugin_objects_kind_name", "kind", "name", unique=True),
        Index("ix_plugin_objects_kind_host_id", "kind", "host_id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(40))
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # None for a kind served by every host of its role (placement "role"), and for one
    # attached to a site (placement "site"), which lives on the site's host.
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), default=None)
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), default=None, index=True
    )
    name: Mapped[str] = mapped_column(String(63))
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)
