"""``/api/v1/domains/{id}/dns`` (how a domain's zone is served), ``/domains/{id}/records``
(every record of the zone: Konbit's and the members'), ``/dns-records/{id}`` and
``/domains/{id}/dkim`` (the domain's DKIM keys; a new one)."""

from __future__ import annotations

import dataclasses
from typing import Any

from fastapi import APIRouter, Response

from panel.core.http import READ_ERRORS, WRITE_ERRORS, PrincipalDep, SessionDep
from panel.core.objects import get_visible, get_writable
from panel.core.pagination import Page
from panel.dns import dkim, service, zones
from panel.dns.models import DnsRecord, DnsZone
from panel.dns.schemas import (
    DkimKeyOut,
    MemberRecordOut,
    RecordIn,
    RecordOut,
    ZoneOut,
    ZonePatch,
)
from panel.domains.models import Domain
from panel.tasks.schemas import TaskOut

router = APIRouter(tags=["dns"])


def _zone(session: SessionDep, domain: Domain) -> ZoneOut:
    row = session.get(DnsZone, domain.id)
    return ZoneOut(
        domain_id=domain.id,
        name=domain.name,
        hosted=row.hosted if row else True,
        dnssec=row.dnssec if row else False,
        name_servers=[s.ns_name for s in zones.servers(session)],
        status=service.status(session) if (row is None or row.hosted) else "external",
    )


def _member(domain: Domain, row: DnsRecord) -> MemberRecordOut:
    return MemberRecordOut(
        id=row.id,
        name=row.name,
        fqdn=zones.fqdn(row.name, domain.name),
        type=row.type,
        ttl=row.ttl,
        data=row.data,
        source="member",
        domain_id=domain.id,
        created_at=row.created_at,
    )


@router.get("/domains/{domain_id}/dns", response_model=ZoneOut, responses=READ_ERRORS)
def get_zone(domain_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """How the domain's zone is served: by Konbit's DNS servers (their names, to give the
    registrar) or elsewhere, signed or not, and whether the servers serve the latest."""
    return _zone(session, get_visible(session, principal, Domain, domain_id))


@router.patch("/domains/{domain_id}/dns", response_model=ZoneOut, responses=WRITE_ERRORS)
def patch_zone(
    domain_id: int, body: ZonePatch, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Serve the zone here or not (``hosted``), sign it with DNSSEC or not."""
    from panel.audit import service as audit
    from panel.core.objects import apply_changes

    domain = get_writable(session, principal, Domain, domain_id)
    row = service.zone_settings(session, domain)
    changes = apply_changes(row, body.model_dump(exclude_none=True))
    if changes:
        audit.record(session, principal, "update", domain, changes, object_type="dns_zone")
    session.commit()
    return _zone(session, domain)


@router.get("/domains/{domain_id}/records", response_model=Page[RecordOut], responses=READ_ERRORS)
def list_records(domain_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Every record of the zone: those Konbit derives from the sites and mail it hosts,
    and the members' own.  For a domain managed elsewhere, the records to set there."""
    domain = get_visible(session, principal, Domain, domain_id)
    found = zones.records(session, domain)
    row = session.get(DnsZone, domain.id)
    items = [
        RecordOut(fqdn=zones.fqdn(r.name, domain.name), **dataclasses.asdict(r)) for r in found
    ]
    if row is None or row.hosted:
        items = [
            RecordOut(
                id=None, name="@", fqdn=domain.name, type="NS", ttl=86_400,
                data=f"{s.ns_name}.", source="dns servers",
            )
            for s in zones.servers(session)
        ] + items  # fmt: skip
    return Page(items=items, next_cursor=None)  # a zone holds at most some hundreds


@router.post(
    "/domains/{domain_id}/records",
    status_code=201,
    response_model=MemberRecordOut,
    responses=WRITE_ERRORS,
)
def create_record(
    domain_id: int, body: RecordIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Add a record (A, AAAA, CNAME, MX, TXT, SRV, CAA) to one of the account's zones."""
    domain = get_writable(session, principal, Domain, domain_id)
    row = service.create(session, principal, domain, body)
    session.commit()
    return _member(domain, row)


def _record(session: SessionDep, principal: PrincipalDep, record_id: int) -> DnsRecord:
    return get_visible(session, principal, DnsRecord, record_id)


@router.get("/dns-records/{record_id}", response_model=MemberRecordOut, responses=READ_ERRORS)
def get_record(record_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    row = _record(session, principal, record_id)
    return _member(session.get_one(Domain, row.domain_id), row)


@router.put("/dns-records/{record_id}", response_model=MemberRecordOut, responses=WRITE_ERRORS)
def replace_record(
    record_id: int, body: RecordIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Replace a member's record with another (any type)."""
    row = get_writable(session, principal, DnsRecord, record_id)
    domain = session.get_one(Domain, row.domain_id)
    service.replace(session, principal, domain, row, body)
    session.commit()
    return _member(domain, row)


@router.delete("/dns-records/{record_id}", status_code=204, responses=WRITE_ERRORS)
def delete_record(record_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    row = get_writable(session, principal, DnsRecord, record_id)
    service.delete(session, principal, row)
    session.commit()
    return Response(status_code=204)


@router.get("/domains/{domain_id}/dkim", response_model=Page[DkimKeyOut], responses=READ_ERRORS)
def list_dkim_keys(domain_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """The domain's DKIM keys, newest first: the one its mail is signed with (active), a
    new one on its way into the zone (published), replaced ones still in the zone until
    ``retire_after`` (retired).  The private keys never leave the mail host."""
    domain = get_visible(session, principal, Domain, domain_id)
    items = [
        DkimKeyOut(
            id=k.id,
            domain_id=domain.id,
            selector=k.selector,
            state=k.state,
            name=zones.fqdn(dkim.record_name(k.selector), domain.name),
            data=dkim.record_data(k.public_key),
            created_at=k.created_at,
            activated_at=k.activated_at,
            retire_after=k.retire_after,
        )
        for k in dkim.keys_of(session, domain.id)
    ]
    return Page(items=items, next_cursor=None)  # a handful: one a rotation, kept a week


@router.post(
    "/domains/{domain_id}/dkim", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS
)
def rotate_dkim_key(domain_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """A new DKIM key (a new selector), made on the domain's mail host: mail is signed
    with it once every DNS server serves its record; the previous key stays in the zone
    for a week (mail signed with it still verifies), then goes."""
    domain = get_writable(session, principal, Domain, domain_id)
    task = dkim.rotate(session, principal, domain)
    session.commit()
    return TaskOut.model_validate(task)
