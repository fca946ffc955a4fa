"""``/api/v1/sites``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from panel.core.http import (
    READ_ERRORS,
    WRITE_ERRORS,
    IfMatch,
    ListDep,
    PrincipalDep,
    SessionDep,
    apply_filters,
    check_if_match,
    set_etag,
)
from panel.core.idempotency import Idempotency, get_idempotency
from panel.core.objects import (
    finish_create,
    finish_delete,
    finish_update,
    get_visible,
    get_writable,
    mark_deleting,
)
from panel.core.pagination import Page, paginate
from panel.sites import service
from panel.sites.models import Site
from panel.sites.schemas import SiteCreate, SiteOut, SiteUpdate

router = APIRouter(prefix="/sites", tags=["sites"])
WITH_ALIASES = (selectinload(Site.aliases),)


@router.get("", response_model=Page[SiteOut], responses=READ_ERRORS)
def list_sites(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the sites you can see; filter by account, host, status or text in the domain."""
    stmt = principal.fence(select(Site).options(*WITH_ALIASES), Site.account_id)
    stmt = apply_filters(stmt, Site, params, Site.domain)
    rows, cursor = paginate(session, stmt, Site.id, params.cursor, params.limit)
    return Page(items=[SiteOut.of(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, response_model=SiteOut, responses=WRITE_ERRORS)
def create_site(
    body: SiteCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: Annotated[Idempotency, Depends(get_idempotency)],
) -> Any:
    """Create a site; it is `pending` until its web host serves it."""
    if replay := idem.replay(session, principal, body):
        return replay
    site = service.create_site(session, principal, body)
    out = SiteOut.of(site)
    return finish_create(
        session, principal, idem, body, site, out, response, body.model_dump(exclude={"account_id"})
    )


@router.get("/{site_id}", response_model=SiteOut, responses=READ_ERRORS)
def get_site(site_id: int, session: SessionDep, principal: PrincipalDep, response: Response) -> Any:
    """One site."""
    site = get_visible(session, principal, Site, site_id, WITH_ALIASES)
    set_etag(response, site)
    return SiteOut.of(site)


@router.patch("/{site_id}", response_model=SiteOut, responses=WRITE_ERRORS)
def update_site(
    site_id: int,
    body: SiteUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change aliases, PHP, document root, HTTPS mode or enable/disable (honours If-Match)."""
    site = get_writable(session, principal, Site, site_id, WITH_ALIASES)
    check_if_match(if_match, site)
    changes = service.update_site(session, site, body)
    finish_update(session, principal, site, changes, response)
    return SiteOut.of(site)


@router.delete("/{site_id}", status_code=202, response_model=SiteOut, responses=WRITE_ERRORS)
def delete_site(
    site_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete a site: its files are archived on the host before the vhost goes."""
    site = get_writable(session, principal, Site, site_id, WITH_ALIASES)
    check_if_match(if_match, site)
    mark_deleting(session, site)
    finish_delete(session, principal, site, site.domain)
    return SiteOut.of(site)
