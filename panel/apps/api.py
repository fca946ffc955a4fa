"""``/api/v1/platforms`` (staff build them; everyone may read them), a site's application
(``/api/v1/sites/{id}/app``: install, read) and the update status of every site."""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request, Response
from pydantic import BaseModel, Field
from sqlalchemy import select

from panel.apps import inventory, service
from panel.apps.models import Platform, SiteApp
from panel.apps.schemas import (
    InstalledOut,
    InstallIn,
    PlatformIn,
    PlatformOut,
    PlatformPatch,
    SiteAppOut,
    UpdateIn,
)
from panel.audit import service as audit
from panel.core.errors import Invalid, NotFound
from panel.core.http import READ_ERRORS, WRITE_ERRORS, PrincipalDep, SessionDep
from panel.core.objects import apply_changes, get_visible, get_writable
from panel.core.pagination import Page, decode_cursor, encode_cursor
from panel.sites.models import Site
from panel.tasks.schemas import TaskOut

router = APIRouter(tags=["applications"])


def _out(platform: Platform, counts: dict[int, int]) -> PlatformOut:
    out = PlatformOut.model_validate(platform)
    out.sites = counts.get(platform.id, 0)
    return out


@router.get("/platforms", response_model=Page[PlatformOut], responses=READ_ERRORS)
def list_platforms(session: SessionDep, principal: PrincipalDep) -> Any:
    """The platforms sites can be installed on (staff also see the retired ones)."""
    stmt = select(Platform).order_by(Platform.app, Platform.id)
    if not principal.is_staff:
        stmt = stmt.where(Platform.enabled.is_(True))
    counts = inventory.sites_per_platform(session)  # a provider has a few dozen platforms: one page
    return Page(items=[_out(p, counts) for p in session.scalars(stmt)], next_cursor=None)


@router.post("/platforms", status_code=201, response_model=PlatformOut, responses=WRITE_ERRORS)
def create_platform(
    body: PlatformIn, session: SessionDep, principal: PrincipalDep, request: Request
) -> Any:
    """Build a platform (staff): from a Debian package or a sysadmin's archive, checked
    against its checksum; put on a web host when a site first needs it."""
    platform = service.create_platform(session, principal, request.app.state.settings, body)
    session.commit()
    return _out(platform, {})


def _platform(session: SessionDep, platform_id: int) -> Platform:
    platform = session.get(Platform, platform_id)
    if platform is None:
        raise NotFound()
    return platform


@router.patch("/platforms/{platform_id}", response_model=PlatformOut, responses=WRITE_ERRORS)
def patch_platform(
    platform_id: int, body: PlatformPatch, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Retire a platform (no new site on it) or bring it back; turn its automatic updates
    on or off and set their maintenance window (staff).  A JSON merge patch: a field left
    out keeps its value; ``window_weekday: null`` means every day."""
    service.require_staff(principal)
    platform = _platform(session, platform_id)
    changes = body.model_dump(exclude_unset=True)
    for key in ("enabled", "auto_update", "window_hour", "window_hours"):
        if key in changes and changes[key] is None:
            raise Invalid(key, "may not be null")
    changed = apply_changes(platform, changes)
    if changed:
        audit.record(session, principal, "update", platform, changed, object_type="platform")
    session.commit()
    return _out(platform, inventory.sites_per_platform(session))


@router.post(
    "/platforms/{platform_id}/update",
    status_code=202,
    response_model=TaskOut,
    responses=WRITE_ERRORS,
)
def update_sites(
    platform_id: int, body: UpdateIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Move the platform's sites (or those named) to another platform of the same
    application (staff): per site a backup, the switch, the application's updater and a
    health check, the backup restored on any failure; per-site results in the task."""
    service.require_staff(principal)
    task = service.start_update(
        session,
        principal,
        _platform(session, platform_id),
        _platform(session, body.target_id),
        body.site_ids,
        body.batch,
    )
    session.commit()
    return TaskOut.model_validate(task)


@router.get("/sites/{site_id}/app", response_model=SiteAppOut, responses=READ_ERRORS)
def get_app(site_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    site = get_visible(session, principal, Site, site_id)
    app = session.scalar(select(SiteApp).where(SiteApp.site_id == site.id))
    if app is None:
        raise NotFound("application")
    return SiteAppOut.model_validate(app)


@router.post(
    "/sites/{site_id}/app", status_code=202, response_model=InstalledOut, responses=WRITE_ERRORS
)
def install(site_id: int, body: InstallIn, session: SessionDep, principal: PrincipalDep) -> Any:
    """Install the platform's application on the site: its database and user are made in
    the account, then its own installer runs (a task). The admin password is in this
    response only."""
    site = get_writable(session, principal, Site, site_id)
    app, task, password = service.install(session, principal, site, body)
    session.commit()
    return InstalledOut(
        app=SiteAppOut.model_validate(app), task_id=task.id, admin_password=password
    )


class AppStatusOut(BaseModel):
    app: str
    newest_platform: str | None
    newest_version: str | None
    sites: int
    on_platforms: int = Field(description="sites installed on one of its platforms")
    by_hand: int = Field(description="sites installed by hand, found by the scan")
    behind: int = Field(
        description="sites on another platform than the newest, or installed by hand at a lower"
        " version than it"
    )


@router.get("/apps/status", response_model=Page[AppStatusOut], responses=READ_ERRORS)
def status(session: SessionDep, principal: PrincipalDep) -> Any:
    """Per application: its newest platform, its sites (on platforms and installed by
    hand) and how many are behind it (staff)."""
    service.require_staff(principal)
    items = [AppStatusOut(**dataclasses.asdict(s)) for s in inventory.summary(session)]
    return Page(items=items, next_cursor=None)


class InventoryOut(BaseModel):
    site_id: int
    domain: str
    account_id: int
    account: str
    app: str
    version: str | None
    platform: str | None = Field(description="null: installed by hand (found by the scan)")
    newest_version: str | None = Field(description="of the app's newest platform")
    behind: bool | None = Field(description="null: no platform of this app to compare with")
    scanned_at: dt.datetime | None


@router.get(
    "/apps/inventory",
    response_model=Page[InventoryOut],
    responses={**READ_ERRORS, 200: {"content": {"application/json": {}, "text/csv": {}}}},
)
def list_inventory(
    session: SessionDep,
    principal: PrincipalDep,
    app: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9-]{1,31}$")] = None,
    behind: bool | None = None,
    account_id: Annotated[int | None, Query(ge=1)] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Every site's application and version, on a platform or installed by hand (as the
    last scan found it), beside the app's newest platform (staff). ``Accept: text/csv``
    gives the whole list as CSV, every page at once."""
    service.require_staff(principal)
    accounts = [account_id] if account_id is not None else None
    if accept and "text/csv" in accept:
        text = inventory.csv_text(session, app=app, behind=behind, account_ids=accounts)
        return Response(text, media_type="text/csv; charset=utf-8")
    found, last = inventory.entries(
        session,
        after=decode_cursor(cursor) if cursor else 0,
        limit=limit,
        app=app,
        behind=behind,
        account_ids=accounts,
    )
    return Page(
        items=[InventoryOut(**dataclasses.asdict(e)) for e in found],
        next_cursor=encode_cursor(last) if last is not None else None,
    )


@router.post("/apps/scan", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS)
def scan(session: SessionDep, principal: PrincipalDep) -> Any:
    """Read every web host's sites for the application they run, those installed by
    hand included (staff; the worker also does it daily). A scan under way is returned."""
    service.require_staff(principal)
    task = inventory.start_scan(session, principal)
    session.commit()
    return TaskOut.model_validate(task)
