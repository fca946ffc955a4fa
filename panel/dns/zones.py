"""Each domain's zone: the records Konbit derives from what it hosts, and the members' own.

Derived (never stored, so they follow every change by construction): A/AAAA for each site
and alias on its web host's public address; for a mail domain an MX to its mail host, SPF,
DMARC, RFC 6186 SRV records and its DKIM keys' TXT (``panel.dns.dkim``); for a list
domain an MX to its lists host.  A host's public address is its ``public_ipv4``/
``public_ipv6`` setting, or its address when that is an IP; a mail host's name is its
``public_name`` setting, or ``mx-<host>.<zone>`` (with its A record) inside the zone.

Read for all zones in a handful of queries (a DNS host's reconcile needs every zone)."""

from __future__ import annotations

import ipaddress
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.accounts.models import Account
from panel.core.db import ObjectStatus
from panel.dns import dkim
from panel.dns.models import DnsChallenge, DnsRecord, DnsZone
from panel.domains.models import Domain
from panel.hosts.models import Host
from panel.lists.models import MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.sites.models import Site, SiteAlias
from provisioners.api import AccountView, DnsServerView, RecordView, ZoneView

SITE_TTL = 300  # short: a site that moves to another host is found there within minutes
MAIL_TTL = 3600
CHALLENGE_TTL = 60  # a CA's resolver must not keep an old answer
SPF = "v=spf1 mx ~all"
DMARC = "v=DMARC1; p=none"


@dataclass(frozen=True)
class Rec:
    """A record of a zone and where it comes from ("site 12", "mail", "member")."""

    name: str  # relative: "@", "www"
    type: str
    ttl: int
    data: str
    source: str
    id: int | None = None  # a member's record


def relative(fqdn: str, zone: str) -> str:
    return "@" if fqdn == zone else fqdn.removesuffix(f".{zone}")


def fqdn(name: str, zone: str) -> str:
    return zone if name == "@" else f"{name}.{zone}"


def _ip(host: Host, family: int) -> str | None:
    key = "public_ipv4" if family == 4 else "public_ipv6"
    given = host.settings.get(key)
    if given:
        return str(given)
    try:
        address = ipaddress.ip_address(host.address)
    except ValueError:
        return None
    return str(address) if address.version == family else None


def _addresses(host: Host, name: str, ttl: int, source: str) -> list[Rec]:
    out = []
    for family, rtype in ((4, "A"), (6, "AAAA")):
        ip = _ip(host, family)
        if ip:
            out.append(Rec(name, rtype, ttl, ip, source))
    return out


def derived(session: Session, domain_ids: Iterable[int] | None = None) -> dict[int, list[Rec]]:
    """Domain id -> the records Konbit derives for its zone."""
    wanted = set(domain_ids) if domain_ids is not None else None
    named_zones = select(Domain.id, Domain.name)
    if wanted is not None:
        named_zones = named_zones.where(Domain.id.in_(wanted))
    zones: dict[int, str] = {i: n for i, n in session.execute(named_zones)}
    hosts = {h.id: h for h in session.scalars(select(Host))}
    out: dict[int, list[Rec]] = defaultdict(list)
    deleting = ObjectStatus.deleting

    def keep(domain_id: int) -> bool:
        return wanted is None or domain_id in wanted

    # One zone's records (a member's record checked against them) read only its rows.
    sites = select(Site.id, Site.domain_id, Site.domain, Site.host_id).where(
        Site.status != deleting
    )
    aliases = (
        select(Site.id, SiteAlias.domain_id, SiteAlias.name, Site.host_id)
        .join(Site, Site.id == SiteAlias.site_id)
        .where(Site.status != deleting)
    )
    if wanted is not None:
        sites = sites.where(Site.domain_id.in_(wanted))
        aliases = aliases.where(SiteAlias.domain_id.in_(wanted))
    names = [*session.execute(sites), *session.execute(aliases)]
    for site_id, domain_id, name, host_id in names:
        if keep(domain_id) and host_id in hosts:
            zone = zones[domain_id]
            out[domain_id] += _addresses(
                hosts[host_id], relative(name, zone), SITE_TTL, f"site {site_id}"
            )

    # Mail domains: the address's domain (a zone's subdomain may carry mail of its own).
    mail: dict[tuple[int, str], tuple[int, str]] = {}
    for model, kind in ((Mailbox, "mail"), (MailAlias, "mail"), (MailingList, "list")):
        rows = select(model.domain_id, model.address, model.host_id).where(
            model.status != deleting
        )
        if wanted is not None:
            rows = rows.where(model.domain_id.in_(wanted))
        for domain_id, address, host_id in session.execute(rows):
            maildomain = address.rpartition("@")[2]
            # Mailboxes win over lists for a domain that has both (its MX is the mail host).
            wins = (domain_id, maildomain) not in mail or kind == "mail"
            if keep(domain_id) and host_id in hosts and maildomain and wins:
                mail[(domain_id, maildomain)] = (host_id, kind)
    named: set[tuple[int, int]] = set()
    for (domain_id, maildomain), (host_id, kind) in sorted(mail.items()):
        zone, host = zones[domain_id], hosts[host_id]
        target = host.settings.get("public_name")
        if target:
            exchange = f"{target}."
        else:
            exchange = f"mx-{host.name}.{zone}."
            if (domain_id, host_id) not in named:
                named.add((domain_id, host_id))
                out[domain_id] += _addresses(
                    host, relative(exchange[:-1], zone), MAIL_TTL, f"{kind} host"
                )
        name = relative(maildomain, zone)
        out[domain_id].append(Rec(name, "MX", MAIL_TTL, f"10 {exchange}", kind))
        out[domain_id].append(Rec(name, "TXT", MAIL_TTL, f'"{SPF}"', "spf"))
        dmarc = "_dmarc" if name == "@" else f"_dmarc.{name}"
        out[domain_id].append(Rec(dmarc, "TXT", MAIL_TTL, f'"{DMARC}"', "dmarc"))
        if kind == "mail":
            for service, port in (("_imaps._tcp", 993), ("_submission._tcp", 587)):
                srv = service if name == "@" else f"{service}.{name}"
                out[domain_id].append(Rec(srv, "SRV", MAIL_TTL, f"0 1 {port} {exchange}", kind))
    for domain_id, name, data in dkim.published(session):  # every key until it is dropped
        if keep(domain_id):
            out[domain_id].append(Rec(name, "TXT", dkim.TTL, data, "dkim"))
    stmt = select(DnsChallenge.domain_id, DnsChallenge.name, DnsChallenge.value)
    for domain_id, name, value in session.execute(stmt.order_by(DnsChallenge.id)):
        if keep(domain_id):
            out[domain_id].append(Rec(name, "TXT", CHALLENGE_TTL, f'"{value}"', "acme"))
    return out


def members(session: Session, domain_ids: Iterable[int] | None = None) -> dict[int, list[Rec]]:
    stmt = select(DnsRecord).order_by(DnsRecord.id)
    if domain_ids is not None:
        stmt = stmt.where(DnsRecord.domain_id.in_(list(domain_ids)))
    out: dict[int, list[Rec]] = defaultdict(list)
    for r in session.scalars(stmt):
        out[r.domain_id].append(Rec(r.name, r.type, r.ttl, r.data, "member", r.id))
    return out


def _policy(data: str) -> str | None:
    """"spf" or "dmarc" for a TXT that states a policy (a member's replaces Konbit's)."""
    text = data.strip('"').lower()
    if text.startswith("v=spf1"):
        return "spf"
    if text.startswith("v=dmarc1"):
        return "dmarc"
    return None


def merge(derived_records: list[Rec], member_records: list[Rec]) -> list[Rec]:
    """The zone's records: a member's MX, or SPF/DMARC TXT, at a name replaces Konbit's
    of that kind there (mail handled elsewhere, a policy of their own); the API refuses the
    member records that would clash with a site's addresses (``service.check_clash``)."""
    mx_names = {r.name for r in member_records if r.type == "MX"}
    policies = {
        (r.name, _policy(r.data)) for r in member_records if r.type == "TXT" and _policy(r.data)
    }
    kept = [
        r
        for r in derived_records
        if not (r.type == "MX" and r.name in mx_names)
        and not (r.type == "TXT" and (r.name, _policy(r.data)) in policies)
    ]
    return kept + member_records


def records(session: Session, domain: Domain) -> list[Rec]:
    """One zone's records, as its DNS servers serve them (NS and SOA apart)."""
    return merge(
        derived(session, [domain.id]).get(domain.id, []),
        members(session, [domain.id]).get(domain.id, []),
    )


def settings_of(session: Session, domain_ids: Iterable[int] | None = None) -> dict[int, DnsZone]:
    stmt = select(DnsZone)
    if domain_ids is not None:
        stmt = stmt.where(DnsZone.domain_id.in_(list(domain_ids)))
    return {z.domain_id: z for z in session.scalars(stmt)}


def zones_for(session: Session) -> tuple[ZoneView, ...]:
    """Every zone the provider's DNS servers serve (domains not managed elsewhere)."""
    accounts = {
        a.id: AccountView(a.id, a.slug, a.status) for a in session.scalars(select(Account))
    }
    settings = settings_of(session)
    found, mine = derived(session), members(session)
    out = []
    for d in session.scalars(select(Domain).order_by(Domain.name)):
        zone = settings.get(d.id)
        if zone is not None and not zone.hosted:
            continue
        out.append(
            ZoneView(
                id=d.id,
                version=d.version,
                account=accounts[d.account_id],
                name=d.name,
                records=tuple(
                    RecordView(r.name, r.type, r.ttl, r.data)
                    for r in merge(found.get(d.id, []), mine.get(d.id, []))
                ),
                dnssec=bool(zone and zone.dnssec),
                deleting=d.status == ObjectStatus.deleting,
            )
        )
    return tuple(out)


def dns_hosts(session: Session) -> list[Host]:
    return [
        h
        for h in session.scalars(select(Host).where(Host.enabled.is_(True)).order_by(Host.id))
        if "dns" in h.roles
    ]


def servers(session: Session) -> tuple[DnsServerView, ...]:
    """The provider's DNS servers, the primary first: the one whose ``dns_primary`` setting
    is on (the lowest id if several are), else the lowest id."""
    found = dns_hosts(session)
    marked = [h for h in found if h.settings.get("dns_primary")]
    primary = (marked or found)[0] if found else None
    views = [
        DnsServerView(
            id=h.id,
            name=h.name,
            address=_ip(h, 4) or _ip(h, 6) or h.address,
            ns_name=str(h.settings.get("dns_ns_name") or f"{h.name}.invalid"),
            primary=h is primary,
        )
        for h in found
    ]
    return tuple(sorted(views, key=lambda v: not v.primary))
