"""Members' DNS records and their zones' settings, checked against the zone as served: a
record that would break a site, or that the DNS servers' checker would refuse (a CNAME
beside other data), is refused here with the reason."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.errors import Conflict, Invalid
from panel.dns import zones
from panel.dns.models import DnsRecord, DnsZone
from panel.dns.schemas import RecordIn, SRVRecord, data_of
from panel.domains.models import Domain
from panel.hosts.models import Host

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
