"""Members' DNS records and their zones' settings, checked against the zone as served: a
record that would break a site, or that the DNS servers' checker would refuse (a CNAME
beside other data), is refused here with the reason."""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.errors import Conflict, Invalid
from panel.dns import zones
from panel.dns.models import DnsChallenge, DnsRecord, DnsZone
from panel.dns.schemas import RecordIn, SRVRecord, data_of
from panel.domains.models import Domain
from panel.hosts.models import Host

if TYPE_CHECKING:
    from panel.core.db import Database
    from panel.core.settings import Settings
    from panel.hosts.reconcile import Report
    from provisioners.api import Provisioner

MAX_RECORDS = 500  # per zone: a member's records


def check(session: Session, domain: Domain, record: RecordIn, replacing: int | None) -> str:
    """The record's data, once it fits the zone; else a 422 or 409 that says why."""
    name, rtype = record.name, record.type
    full = zones.fqdn(name, domain.name)
    if len(full) > 253:
        raise Invalid("name", f"{full} is longer than 253 characters")
    if rtype == "CNAME" and name == "@":
        raise Invalid("name", "a CNAME cannot be at the domain itself; use A/AAAA records")
    if isinstance(record, SRVRecord) and not _is_srv_name(name):
        raise Invalid("name", "an SRV record's name starts with _service._proto, like _sip._tcp")
    data = data_of(record)
    others = [r for r in zones.records(session, domain) if r.id is None or r.id != replacing]
    here = [r for r in others if r.name == name]
    site = next((r for r in here if r.source.startswith("site")), None)
    if site is not None and rtype in ("A", "AAAA", "CNAME"):
        raise Conflict(
            f"{full} is a site on this provider ({site.source}): its address records are "
            "Konbit's. Remove the site or its alias first, or use another name."
        )
    if rtype == "CNAME" and here:
        raise Conflict(f"{full} already has {here[0].type} records; a CNAME must be alone")
    cname = next((r for r in here if r.type == "CNAME"), None)
    if cname is not None:
        raise Conflict(f"{full} is a CNAME to {cname.data}; remove it first")
    if any(r.type == rtype and r.data == data for r in here):
        raise Conflict(f"{full} already has this {rtype} record")
    if replacing is None:
        count = session.scalar(
            select(func.count()).select_from(DnsRecord).where(DnsRecord.domain_id == domain.id)
        )
        if (count or 0) >= MAX_RECORDS:
            raise Invalid("domain", f"{domain.name} has {MAX_RECORDS} records, the most a zone may")
    return data


def _is_srv_name(name: str) -> bool:
    labels = name.split(".")
    return len(labels) >= 2 and labels[0].startswith("_") and labels[1] in ("_tcp", "_udp", "_tls")


def create(session: Session, principal: Principal, domain: Domain, record: RecordIn) -> DnsRecord:
    data = check(session, domain, record, None)
    row = DnsRecord(
        account_id=domain.account_id,
        domain_id=domain.id,
        name=record.name,
        type=record.type,
        ttl=record.ttl,
        data=data,
    )
    session.add(row)
    session.flush()
    audit.record(
        session, principal, "create", row, {"record": {"new": f"{row.name} {row.type} {data}"}}
    )
    return row


def replace(
    session: Session, principal: Principal, domain: Domain, row: DnsRecord, record: RecordIn
) -> DnsRecord:
    data = check(session, domain, record, row.id)
    before = f"{row.name} {row.type} {row.data}"
    row.name, row.type, row.ttl, row.data = record.name, record.type, record.ttl, data
    audit.record(
        session, principal, "update", row,
        {"record": {"old": before, "new": f"{row.name} {row.type} {data}"}},
    )  # fmt: skip
    return row


def delete(session: Session, principal: Principal, row: DnsRecord) -> None:
    audit.record(
        session, principal, "delete", row, {"record": {"old": f"{row.name} {row.type} {row.data}"}}
    )
    session.delete(row)


def zone_settings(session: Session, domain: Domain) -> DnsZone:
    row = session.get(DnsZone, domain.id)
    if row is None:
        row = DnsZone(domain_id=domain.id, account_id=domain.account_id, hosted=True, dnssec=False)
        session.add(row)
    return row


def status(session: Session) -> str:
    """Whether the DNS servers serve the latest records: active, pending (a server has not
    applied them yet), failed (a server's last apply failed: it serves the previous
    ones), or none (no DNS server: set the records where the domain's DNS is managed)."""
    found: list[Host] = zones.dns_hosts(session)
    if not found:
        return "none"
    if any(h.failures for h in found):
        return "failed"
    if any(h.applied_generation < h.desired_generation for h in found):
        return "pending"
    return "active"


# -- ACME DNS-01: answers published in the zone while a CA checks them ---------------------


class DnsUnavailable(Exception):
    """The zone cannot carry a DNS-01 answer now; the message says why."""


def owning_zone(session: Session, name: str) -> Domain | None:
    """The hosted zone ``name`` is in (the longest domain it ends with), or None."""
    candidates = [name] + [name.split(".", i)[i] for i in range(1, name.count("."))]
    found = session.scalars(select(Domain).where(Domain.name.in_(candidates))).all()
    best = max(found, key=lambda d: len(d.name), default=None)
    if best is None:
        return None
    row = session.get(DnsZone, best.id)
    return best if row is None or row.hosted else None


def publish(
    db: Database,
    settings: Settings,
    plugins: Sequence[Provisioner],
    answers: Sequence[tuple[str, str]],
    owner: str,
) -> list[int]:
    """Put each (name, value) as ``_acme-challenge.<name>`` TXT in its zone and have every
    DNS server serve it (the primary reconciled, then the secondaries, which transfer
    it at the primary's NOTIFY); returns the rows' ids for ``withdraw``."""
    with db.session() as session:
        if not zones.dns_hosts(session):
            raise DnsUnavailable("no DNS host serves zones here; add one (role dns) first")
        rows = []
        for name, value in answers:
            zone = owning_zone(session, name)
            if zone is None:
                raise DnsUnavailable(
                    f"{name}'s DNS is not served by this provider (its domain is managed "
                    "elsewhere): a wildcard certificate needs the zone here"
                )
            label = zones.relative(f"_acme-challenge.{name}", zone.name)
            rows.append(DnsChallenge(domain_id=zone.id, name=label, value=value))
        session.add_all(rows)
        session.commit()
        ids = [r.id for r in rows]
        hosts = [(s.id, s.name) for s in zones.servers(session)]  # the primary first
    try:
        for host_id, name in hosts:
            report = _reconciled(db, settings, plugins, host_id, owner)
            if report.result not in ("applied", "noop"):
                raise DnsUnavailable(f"DNS host {name} did not take the answer: {report.error}")
        time.sleep(settings.acme_dns_propagation_seconds)
    except BaseException:
        withdraw(db, ids)
        raise
    return ids


def _reconciled(
    db: Database, settings: Settings, plugins: Sequence[Provisioner], host_id: int, owner: str
) -> Report:
    from panel.hosts.reconcile import reconcile_host

    deadline = time.monotonic() + 120
    while (report := reconcile_host(db, settings, host_id, plugins, owner)) is None:
        if time.monotonic() > deadline:
            raise DnsUnavailable("another worker held a DNS host for 120 s; try again")
        time.sleep(0.5)
    return report


def withdraw(db: Database, ids: Sequence[int]) -> None:
    """The answers go from their zones (the DNS servers follow at their next reconcile)."""
    with db.session() as session:
        for row in session.scalars(select(DnsChallenge).where(DnsChallenge.id.in_(list(ids)))):
            session.delete(row)
        session.commit()
