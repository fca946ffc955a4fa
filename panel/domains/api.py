"""``/api/v1/domains``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from panel.audit import service as audit
from panel.core.http import (
    READ_ERRORS,
    WRITE_ERRORS,
    ListDep,
    PrincipalDep,
    SessionDep,
    apply_filters,
    set_etag,
)
from panel.core.idempotency import Idempotency, get_idempotency
from panel.core.objects import get_visible, get_writable
from panel.core.pagination import Page, paginate
from panel.domains import service
from panel.domains.models import Domain
from panel.domains.schemas import DomainCreate, DomainOut

router = APIRouter(prefix="/domains", tags=["domains"])


@router.get("", response_model=Page[DomainOut], responses=READ_ERRORS)
def list_domains(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the domains you can see."""
    stmt = apply_filters(
        principal.fence(select(Domain), Domain.account_id), Domain, params, Domain.name
    )
    rows, cursor = paginate(session, stmt, Domain.id, params.cursor, params.limit)
    return Page(items=[DomainOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, response_model=DomainOut, responses=WRITE_ERRORS)
def create_domain(
    body: DomainCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: Annotated[Idempotency, Depends(get_idempotency)],
) -> Any:
    """Register a domain for an account (its sites, mailboxes and lists live under it)."""
    if replay := idem.replay(session, principal, body):
        return replay
    domain = service.create_domain(session, principal, body.account_id, body.name)
    audit.record(session, principal, "create", domain, {"name": domain.name})
    out = DomainOut.model_validate(domain)
    idem.remember(session, principal, body, out)
    session.commit()
    set_etag(response, domain)
    return out


@router.get("/{domain_id}", response_model=DomainOut, responses=READ_ERRORS)
def get_domain(
    domain_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One domain."""
    domain = get_visible(session, principal, Domain, domain_id)
    set_etag(response, domain)
    return DomainOut.model_validate(domain)


@router.delete("/{domain_id}", status_code=204, responses=WRITE_ERRORS)
def delete_domain(domain_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """Remove a domain that nothing uses any more."""
    domain = get_writable(session, principal, Domain, domain_id)
    service.delete_domain(session, domain)
    audit.record(session, principal, "delete", domain, {"name": domain.name})
    session.commit()
    return Response(status_code=204)
