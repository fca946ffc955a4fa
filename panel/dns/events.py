"""The DNS servers follow what their zones are derived from: a listener on every session
(registered when this module is imported: ``panel.models`` does, in every process)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import event, inspect, update
from sqlalchemy.orm import Session

from panel.core.db import ObjectStatus
from panel.dns.models import DnsChallenge, DnsRecord, DnsZone
from panel.dns.zones import servers
from panel.domains.models import Domain
from panel.hosts.models import Host
from panel.lists.models import MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.sites.models import Site, SiteAlias

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
