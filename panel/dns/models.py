"""DNS: how each domain's zone is served, and the records members add to it (the records
Konbit derives from sites and mail are computed, never stored: ``panel.dns.zones``)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, String, event, inspect, update
from sqlalchemy.orm import Mapped, Session, mapped_column

from panel.core.db import Base, ObjectStatus, Timestamped, utcnow
from panel.domains.models import Domain
from panel.hosts.models import Host
from panel.lists.models import MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.sites.models import Site, SiteAlias


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


# -- the DNS servers follow what their zones are derived from ------------------------------

# What a zone is derived from, and the columns of it that change a zone's records
# (None: any change).  A site turning active or a host's generations moving do not: the
# DNS servers are not reconciled for every reconcile of another host.
_WATCHED: dict[type[Any], tuple[str, ...] | None] = {
    Site: ("domain", "host_id", "status"),
    SiteAlias: ("name", "site_id"),
    Mailbox: ("address", "host_id", "status"),
    MailAlias: ("address", "host_id", "status"),
    MailingList: ("address", "host_id", "status"),
    Domain: ("name", "status"),
    DnsRecord: None,
    DnsZone: None,
    DnsChallenge: None,
    Host: ("address", "settings", "enabled", "roles"),
}


def _touches_zones(obj: Any) -> bool:
    watched = _WATCHED.get(type(obj))
    if watched is None:
        return type(obj) in _WATCHED
    state = inspect(obj)
    for name in watched:
        history = state.attrs[name].history
        if not history.has_changes():
            continue
        if name == "status":  # only into or out of deleting
            values = {*history.added, *history.deleted}
            if ObjectStatus.deleting not in values:
                continue
        return True
    return False


@event.listens_for(Session, "before_flush")
def _bump_dns_hosts(session: Session, _context: Any, _instances: Any) -> None:
    """Any change to what zones are made of marks the DNS servers dirty, in the same
    transaction as the change (the rows, not a message, are the truth).  A change of
    records alone marks the primary only: the secondaries' files list the zones, not their
    records (they transfer those at the primary's NOTIFY); a zone added, removed or moved,
    or a server changed, marks them all."""
    changed = [*session.new, *session.deleted]
    touched = [o for o in changed if type(o) in _WATCHED] + [
        o for o in session.dirty if type(o) in _WATCHED and _touches_zones(o)
    ]
    if not touched:
        return
    from panel.dns.zones import servers
    from panel.hosts.service import bump_generations

    everyone = any(isinstance(o, (Domain, DnsZone, Host)) for o in touched)
    ids = [s.id for s in servers(session) if everyone or s.primary]
    bump_generations(session, ids)
    # A zone its servers refused is tried again with the change (it may be the fix).
    session.execute(
        update(Domain)
        .where(Domain.status == ObjectStatus.failed)
        .values(status=ObjectStatus.pending)
        .execution_options(synchronize_session=False)
    )
