"""Websites and their alias names."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, Index, String, Text, false, true
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panel.core.db import Base, Reconciled, Timestamped


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
    https_redirect: Mapped[bool] = mapped_column(default=True, server_default=true())
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


class SiteCertificate(Base, Timestamped):
    """A site's certificate (public, served from the host's konbit tree) and, for ``acme``,
    the bookkeeping of issuance and renewal.  Kept off the ``sites`` row: the worker writes
    here without bumping the site's version (its ETag, and what a reconcile settles).

    The private key lives on the web host under ``/etc/konbit/private/site-<id>/<key_name>``:
    generated there for ACME (it never leaves the host), or uploaded by the member for
    ``custom`` and then kept here only encrypted (``key_sealed``), to be written to the host
    through a step's stdin.
    """

    __tablename__ = "site_certificates"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    source: Mapped[str | None] = mapped_column(String(16), default=None)  # acme or custom
    chain_pem: Mapped[str | None] = mapped_column(Text, default=None)  # leaf first
    key_name: Mapped[str | None] = mapped_column(String(64), default=None)
    key_sealed: Mapped[str | None] = mapped_column(Text, default=None)
    names: Mapped[list[str]] = mapped_column(default=list)
    serial: Mapped[str | None] = mapped_column(String(64), default=None)
    issuer: Mapped[str | None] = mapped_column(String(300), default=None)
    not_before: Mapped[dt.datetime | None] = mapped_column(default=None)
    not_after: Mapped[dt.datetime | None] = mapped_column(default=None)
    renew_at: Mapped[dt.datetime | None] = mapped_column(default=None, index=True)
    # ACME: "pending" (waiting for a certificate), "valid", "failed" (reason says why).
    acme_state: Mapped[str | None] = mapped_column(String(16), default=None)
    reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    retry_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    renew_requested: Mapped[bool] = mapped_column(default=False, server_default=false())
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class AcmeAccount(Base, Timestamped):
    """The panel's account with one ACME directory; its key sealed at rest."""

    __tablename__ = "acme_accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    directory: Mapped[str] = mapped_column(String(500), unique=True)
    key_sealed: Mapped[str] = mapped_column(Text)
    uri: Mapped[str | None] = mapped_column(String(500), default=None)
