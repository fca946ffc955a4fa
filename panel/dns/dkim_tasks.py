# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key, which PEP 544 allows and mypy flags:
# python/mypy#4717.)
"""The DKIM tasks, run by the worker (``panel.dns.dkim`` says when they start).

``dkim-key``: a new key on the domain's mail host (``DkimKeys.new_key``: the private part
stays there, the public part comes back), its record into the zone, every DNS server
reconciled (the primary first; the secondaries transfer at its NOTIFY), and only then the
key active: the previous one retired (still published until ``retire_after``) and the
mail host reconciled to sign with the new one.  A zone managed elsewhere, or no DNS host
at all: the key signs at once, and the domain's records list the TXT to set there.

``dkim-drop``: retired keys past ``retire_after`` out of the zone, their files off the
mail host."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.core.db import ObjectStatus, utcnow
from panel.dns import zones
from panel.dns.dkim import (
    RETIRE_AFTER,
    DkimKey,
    DkimState,
    check_public_key,
    keys_of,
    mail_host_of,
    new_selector,
    record_name,
)
from panel.domains.models import Domain
from panel.hosts.models import Host
from panel.hosts.service import bump_generations
from panel.tasks.run.job import Job, TaskFailed, run
from provisioners.api import DkimKeys, NotOffered, offered


def _ops(job: Job) -> DkimKeys:
    try:
        return offered(job.plugins, DkimKeys)
    except NotOffered as exc:
        raise TaskFailed(str(exc)) from None


def _bump_dns(session: Session) -> None:
    """What the zones are made of changed: every DNS host is dirty."""
    bump_generations(session, [h.id for h in zones.dns_hosts(session)])


def do_key(job: Job) -> None:
    """A new key for the domain, published, then signing (see the module's docstring)."""
    domain_id = int(job.params()["domain_id"])
    ops = _ops(job)
    with job.db.session() as session:
        domain = session.get(Domain, domain_id)
        if domain is None or domain.status == ObjectStatus.deleting:
            raise TaskFailed(f"domain {domain_id} no longer exists")
        host_id = mail_host_of(session, domain_id)
        if host_id is None:
            raise TaskFailed(f"{domain.name} has no mail (no mailbox nor alias): no key to make")
        name, account_id = domain.name, domain.account_id
        host = session.get_one(Host, host_id).name
        selector = new_selector((k.selector for k in keys_of(session, domain_id)), utcnow())
    job.say(f"a {selector} key for {name} on {host}", 5)
    with job.host(host_id) as conn:
        made = run(conn, ops.new_key(name, selector))
    if not made.ok:
        raise TaskFailed(f"the key could not be made on {host}: {made.error_text(500).strip()}")
    try:
        public_key = check_public_key(made.text())
    except ValueError as exc:
        raise TaskFailed(f"{host} answered with no usable public key: {exc}") from None
    fqdn = zones.fqdn(record_name(selector), name)
    with job.db.session() as session:
        key = DkimKey(
            account_id=account_id,
            domain_id=domain_id,
            host_id=host_id,
            selector=selector,
            public_key=public_key,
            state=DkimState.published,
        )
        session.add(key)
        _bump_dns(session)
        session.commit()
        key_id = key.id
    job.say(f"{fqdn} TXT in the zone", 30)
    served = _wait_served(job, domain_id)
    with job.db.session() as session:
        now = utcnow()
        for other in keys_of(session, domain_id):
            if other.id != key_id and other.state != DkimState.retired:
                other.state, other.retire_after = DkimState.retired, now + RETIRE_AFTER
        key = session.get_one(DkimKey, key_id)
        key.state, key.activated_at = DkimState.active, now
        bump_generations(session, [host_id])
        session.commit()
    job.say(f"{selector} is the key {host} signs {name}'s mail with", 70)
    report = job.converge(host_id, f"mail host {host}")
    if report.result not in ("applied", "noop"):
        raise TaskFailed(f"{host} did not take the key: {report.error or report.result}")
    job.result(selector=selector, record=fqdn, served_by=served)


def _wait_served(job: Job, domain_id: int) -> list[str]:
    """Every DNS server reconciled with the zone, primary first; the names of those that
    serve it (none: the zone is managed elsewhere, or there is no DNS host)."""
    with job.db.session() as session:
        row = zones.settings_of(session, [domain_id]).get(domain_id)
        servers = [(s.id, s.name) for s in zones.servers(session)]
    if row is not None and not row.hosted:
        job.say("the zone is managed elsewhere: its records list the TXT to set there")
        return []
    if not servers:
        job.say("no DNS host: the domain's records list the TXT to set where its zone is")
        return []
    for n, (host_id, name) in enumerate(servers, 1):
        report = job.converge(host_id, f"DNS host {name}")
        if report.result not in ("applied", "noop"):
            raise TaskFailed(f"DNS host {name} did not take the record: {report.error}")
        job.say(f"served by {name}", 30 + 30 * n // len(servers))
    with job.db.session() as session:
        domain = session.get_one(Domain, domain_id)
        if domain.status == ObjectStatus.failed:
            raise TaskFailed(f"the zone was refused: {domain.status_reason}")
    return [name for _, name in servers]


def do_drop(job: Job) -> None:
    """Retired keys past their time: out of the zone first, then off the mail host."""
    params = job.params()
    ids = [int(i) for i in params.get("key_ids", [])]
    now = utcnow()
    with job.db.session() as session:
        rows = session.scalars(
            select(DkimKey).where(
                DkimKey.id.in_(ids),
                DkimKey.state == DkimState.retired,
                DkimKey.retire_after <= now,
            )
        ).all()
        names = {d.id: d.name for d in session.scalars(select(Domain))}
        gone = [(k.host_id, names[k.domain_id], k.selector) for k in rows]
        for key in rows:
            session.delete(key)
        if rows:
            _bump_dns(session)
        session.commit()
    ops = _ops(job)
    left: list[str] = []
    with job.hosts() as on:
        for host_id, domain, selector in gone:
            done = run(on(host_id), ops.remove_key(domain, selector))
            if not done.ok:
                left.append(f"{selector} of {domain} ({done.error_text(200).strip()})")
    job.result(dropped=[f"{selector}._domainkey.{domain}" for _, domain, selector in gone])
    if left:
        raise TaskFailed("out of the zone, but still on the mail host: " + "; ".join(left))
