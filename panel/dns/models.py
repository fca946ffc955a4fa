"""DNS: how each domain's zone is served, and the records members add to it (the records
Konbit derives from sites and mail are computed, never stored: ``panel.dns.zones``)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Timestamped, utcnow


class DnsZone(Base, Timestamped):
    """A domain's DNS settings; a domain without a row is served, unsigned."""

    __tablename__ = "dns_zones"

    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    # False: the domain's DNS is managed elsewhere; the panel shows the records to set there.
    hosted: Mapped[bool] = mapped_column(default=True)
    dnssec: Mapped[bool] = mapped_column(default=False)


class DnsRecord(Base, Timestamped):
    """A record a member added to one of its domains' zones.  ``data`` is the record's
    zone-file form, built from fields that each matched their type's pattern."""

    __tablename__ = "dns_records"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(253))  # relative to the zone; "@" its apex
    type: Mapped[str] = mapped_column(String(8))
    ttl: Mapped[int] = mapped_column(default=3600)
    data: Mapped[str] = mapped_column(String(4200))


class DnsChallenge(Base):
    """An ACME DNS-01 answer (``_acme-challenge.<name>`` TXT) in a zone while a CA checks
    it: added before the challenge is answered, removed once the order is done."""

    __tablename__ = "dns_challenges"

    id: Mapped[int] = mapped_column(primary_key=True)
    domain_id: Mapped[int] = mapped_column(
        ForeignKey("domains.id", ondelete="CASCADE"), index=True
    )
    name: Mapped[str] = mapped_column(String(253))  # relative to the zone
    value: Mapped[str] = mapped_column(String(100))  # base64url of a SHA-256
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
