"""``/api/v1/platforms`` (staff build them; everyone may read them), a site's application
(``/api/v1/sites/{id}/app``: install, read) and the update status of every site."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from sqlalchemy import func, select

from panel.apps import service
from panel.apps.detect import version_key
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
from panel.core.errors import NotFound
from panel.core.http import READ_ERRORS, WRITE_ERRORS, PrincipalDep, SessionDep
from panel.core.objects import get_visible, get_writable
from panel.core.pagination import Page
from panel.sites.models import Site
from panel.tasks.schemas import TaskOut

router = APIRouter(tags=["applications"])


def _counts(session: SessionDep) -> dict[int, int]:
    rows = session.execute(select(SiteApp.platform_id, func.count()).group_by(SiteApp.platform_id))
    return {platform_id: count for platform_id, count in rows}


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
    counts = _counts(session)  # a provider has a few dozen platforms: one page
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
    """Retire a platform (no new site on it) or bring it back (staff)."""
    service.require_staff(principal)
    platform = _platform(session, platform_id)
    platform.enabled = body.enabled
    session.commit()
    return _out(platform, _counts(session))


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
    behind: int = Field(description="sites on an older platform than the newest")


@router.get("/apps/status", response_model=Page[AppStatusOut], responses=READ_ERRORS)
def status(session: SessionDep, principal: PrincipalDep) -> Any:
    """Per application: its newest platform, and how many sites are behind it (staff)."""
    service.require_staff(principal)
    rows = session.execute(
        select(SiteApp.app, Platform.version, Platform.id).join(
            Platform, Platform.id == SiteApp.platform_id
        )
    ).all()
    out: list[AppStatusOut] = []
    for app in sorted({r[0] for r in rows}):
        newest = service.newest(session, app)
        mine = [r for r in rows if r[0] == app]
        behind = (
            sum(
                1
                for _, version, pid in mine
                if pid != newest.id and version_key(version) <= version_key(newest.version)
            )
            if newest
            else 0
        )
        out.append(
            AppStatusOut(
                app=app,
                newest_platform=newest.name if newest else None,
                newest_version=newest.version if newest else None,
                sites=len(mine),
                behind=behind,
            )
        )
    return Page(items=out, next_cursor=None)
