"""Websites and their alias names."""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panel.core.db import Base, Reconciled


class HttpsMode(enum.StrEnum):
    off = "off"
    acme = "acme"
    custom = "custom"


class Site(Base, Reconciled):
    """A vhost on a web host, served from a directory under its account's home."""

    __tablename__ = "sites"
    __table_args__ = (Index("ix_sites_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    domain: Mapped[str] = mapped_column(String(253), unique=True)
    document_root: Mapped[str] = mapped_column(String(200))
    php: Mapped[str | None] = mapped_column(String(8), default=None)
    https: Mapped[str] = mapped_column(String(16), default=HttpsMode.off)
    enabled: Mapped[bool] = mapped_column(default=True)

    aliases: Mapped[list[SiteAlias]] = relationship(
        lazy="raise", cascade="all, delete-orphan", order_by="SiteAlias.id"
    )


class SiteAlias(Base):
    """Another name a site answers to; unique across all sites."""

    __tablename__ = "site_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
