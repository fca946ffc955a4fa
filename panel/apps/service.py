"""Platforms and site applications: what the API and pages ask for, checked here; the
work on hosts is done by the tasks in ``panel.apps.tasks``.

Secrets: the admin password is made here, returned once in the response and never
stored; the install task gets its hash in the application's own format (WordPress reads
bcrypt through crypt(3), DokuWiki through its PassHash, MediaWiki its ``:pbkdf2:``
form).  The database password is made by the task on the worker and goes only to the
database host (as a verifier) and into the site's own configuration file."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import secrets
from pathlib import Path
from typing import Any

import bcrypt
from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write
from panel.apps import build
from panel.apps.detect import version_key
from panel.apps.models import AppStatus, Platform, SiteApp
from panel.apps.schemas import InstallIn, PlatformIn
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import Conflict, Forbidden, Invalid
from panel.core.settings import Settings
from panel.core.validation import db_prefix
from panel.databases import service as databases
from panel.databases.models import Engine
from panel.databases.schemas import DatabaseCreate, DatabaseUserCreate
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.tasks.service import ACTIVE_STATES, enqueue, record_started

log = logging.getLogger("konbit.apps")
INSTALLABLE = ("wordpress", "mediawiki", "dokuwiki")  # apps whose installer Konbit runs
WITHOUT_DATABASE = ("dokuwiki",)  # its pages are files in the site's own directory


def artifact_store(settings: Settings) -> Path:
    return settings.data_dir / "platforms"


def artifact_path(settings: Settings, platform: Platform) -> Path:
    return artifact_store(settings) / f"{platform.sha256}.tar.gz"


def require_staff(principal: Principal) -> None:
    if not principal.is_staff:
        raise Forbidden("Only the provider's staff manage platforms.")


def create_platform(
    session: Session, principal: Principal, settings: Settings, data: PlatformIn
) -> Platform:
    """Build the platform's artifact (download, verify, pack), then record it."""

    require_staff(principal)
    if session.scalar(select(Platform.id).where(Platform.name == data.name)):
        raise Conflict(f"A platform named {data.name} exists; builds never change, name it anew.")
    try:
        built = build.build(
            data.build_source(), artifact_store(settings), deb_cache=settings.deb_cache
        )
    except build.BuildError as exc:
        raise Invalid("source", str(exc)) from None
    platform = Platform(
        name=data.name,
        app=built.app,
        version=built.version,
        sha256=built.sha256,
        size=built.size,
        source=built.source_text[:500],
    )
    session.add(platform)
    session.flush()
    audit.record(session, principal, "create", platform, object_type="platform")
    return platform


def newest(session: Session, app: str) -> Platform | None:
    """The enabled platform of the app at the highest version (the newest build of it)."""
    return Newest(session).best.get(app)


class Newest:
    """Each application's newest platform, read once per request."""

    def __init__(self, session: Session):
        platforms = session.scalars(select(Platform)).all()
        self.by_id = {p.id: p for p in platforms}
        self.best: dict[str, Platform] = {}
        for p in platforms:
            if p.enabled and (
                p.app not in self.best
                or (version_key(p.version), p.id)
                > (version_key(self.best[p.app].version), self.best[p.app].id)
            ):
                self.best[p.app] = p

    def behind(self, app: str, platform_id: int | None, version: str | None) -> bool | None:
        """A site on a platform is behind when a newer build of its app exists (another
        build at the same version counts: it is the one sites should be on); a site
        installed by hand, when its version is below the newest platform's."""
        newest = self.best.get(app)
        if newest is None:
            return None
        if platform_id is not None:
            mine = self.by_id.get(platform_id)
            return (
                mine is not None
                and mine.id != newest.id
                and version_key(mine.version) <= version_key(newest.version)
            )
        if version is None:
            return None
        return version_key(version) < version_key(newest.version)


def app_hash(app: str, password: str) -> str:
    """The password's hash as the application stores it."""
    # crypt(3) bcrypt; PHP knows the $2y$ spelling (DokuWiki's PassHash verifies it too)
    if app in ("wordpress", "dokuwiki"):
        return "$2y$" + bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode()[4:]
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, 30_000, 64)
    b64 = base64.b64encode
    return f":pbkdf2:sha512:30000:64:{b64(salt).decode()}:{b64(digest).decode()}"


def _busy(session: Session, site: Site) -> None:
    under_way = session.scalar(
        select(Task.id).where(
            Task.site_id == site.id,
            Task.kind.in_([TaskKind.app_install, TaskKind.app_update]),
            Task.status.in_(ACTIVE_STATES),
        )
    )
    if under_way is not None:
        raise Conflict(f"Task {under_way} is working on {site.domain}'s application; wait for it.")


def _database(session: Session, principal: Principal, account_id: int, name: str) -> int:
    """The site application's database and its user, in the account (its quota)."""
    db = databases.create_database(
        session, principal, DatabaseCreate(account_id=account_id, name=name, engine=Engine.mariadb)
    )
    databases.create_user(
        session,
        principal,
        DatabaseUserCreate(
            account_id=account_id,
            name=name,
            # Replaced by the install task's own (this one is never seen by anyone).
            password=secrets.token_urlsafe(24),
            databases=[name],
        ),
    )
    return db.id


def install(
    session: Session, principal: Principal, site: Site, data: InstallIn
) -> tuple[SiteApp, Task, str]:
    """A site's application on a platform: its database and user (the account's quota;
    none for DokuWiki, whose pages are files), the record, the install task.  Returns them
    with the admin password (shown once)."""
    account = account_for_write(session, principal, site.account_id)
    if site.status == ObjectStatus.deleting:
        raise Conflict(f"{site.domain} is being deleted.")
    if not site.php:
        raise Invalid("site", f"{site.domain} is a static site: give it a PHP version first")
    if session.scalar(select(SiteApp.id).where(SiteApp.site_id == site.id)):
        raise Conflict(f"{site.domain} already has its application.")
    platform = session.get(Platform, data.platform_id)
    if platform is None or not platform.enabled:
        raise Invalid("platform_id", f"there is no platform {data.platform_id} to install from")
    if platform.app not in INSTALLABLE:
        raise Invalid(
            "platform_id",
            f"{platform.app} sites are installed by hand (upload it); Konbit installs "
            + ", ".join(INSTALLABLE),
        )
    _busy(session, site)
    database_id = None
    if platform.app not in WITHOUT_DATABASE:
        name = f"{db_prefix(account.slug)}app{site.id}"
        database_id = _database(session, principal, account.id, name)
    password = secrets.token_urlsafe(15)
    app = SiteApp(
        site_id=site.id,
        account_id=account.id,
        platform_id=platform.id,
        app=platform.app,
        title=data.title,
        admin_user=data.admin_user,
        admin_email=data.admin_email,
        database_id=database_id,
        status=AppStatus.installing,
        admin_hash=app_hash(platform.app, password),
    )
    session.add(app)
    session.flush()
    task = enqueue(
        session,
        Task(
            account_id=account.id,
            kind=TaskKind.app_install,
            site_id=site.id,
            params={"site_app_id": app.id, "platform": platform.name},
            user_id=principal.user.id,
        ),
    )
    record_started(session, principal, task, site)
    return app, task, password


def start_update(
    session: Session, principal: Principal | None, platform: Platform, target: Platform,
    site_ids: list[int] | None, batch: int, *, until: dt.datetime | None = None,
) -> Task:  # fmt: skip
    """Every site of ``platform`` (or those named) moved to ``target``, in batches; a
    batch with a site rolled back stops the update there (a bad build reaches one batch).
    ``principal`` None: the maintenance window's automatic update, which leaves out the
    sites this target was already rolled back from, and stops starting sites at ``until``."""
    if principal is not None:
        require_staff(principal)
    if target.app != platform.app or target.id == platform.id:
        raise Invalid("target_id", f"choose another {platform.app} platform to move the sites to")
    stmt = select(SiteApp).where(SiteApp.platform_id == platform.id)
    if site_ids is not None:
        stmt = stmt.where(SiteApp.site_id.in_(site_ids))
    if principal is None:
        stmt = stmt.where(
            SiteApp.status == AppStatus.active,
            or_(SiteApp.refused_platform_id.is_(None), SiteApp.refused_platform_id != target.id),
        )
    apps = session.scalars(stmt.order_by(SiteApp.site_id)).all()
    if not apps:
        raise Invalid("site_ids", f"no site of {platform.name} to update")
    for a in apps:
        if a.status not in (AppStatus.active, AppStatus.failed):
            raise Conflict(f"site {a.site_id} is {a.status}; wait for it and try again")
    params: dict[str, Any] = {
        "from": platform.id,
        "to": target.id,
        "site_ids": [a.site_id for a in apps],
        "batch": batch,
    }
    if until is not None:
        params["until"] = until.isoformat()
    task = enqueue(
        session,
        Task(
            account_id=None,
            kind=TaskKind.app_update,
            params=params,
            user_id=principal.user.id if principal else None,
        ),
    )
    audit.record(
        session, principal, TaskKind.app_update, platform, {"task": {"new": task.id}},
        object_type="platform",
    )  # fmt: skip
    return task


def window_end(platform: Platform, now: dt.datetime) -> dt.datetime | None:
    """The end of the platform's maintenance window ``now`` is in, or None (outside it).
    A window may run past midnight: it belongs to the day it starts on."""
    for days_back in (0, 1):
        start = (now - dt.timedelta(days=days_back)).replace(
            hour=platform.window_hour, minute=0, second=0, microsecond=0
        )
        end = start + dt.timedelta(hours=platform.window_hours)
        weekday_ok = platform.window_weekday is None or start.weekday() == platform.window_weekday
        if weekday_ok and start <= now < end:
            return end
    return None


def run_due_updates(session: Session, now: dt.datetime | None = None) -> list[int]:
    """In each automatic platform's window: its sites to the app's newest platform, if
    that is newer, once per window (an update under way, or one started in this window,
    is not started again)."""
    now = now or utcnow()
    started: list[int] = []
    for platform in session.scalars(
        select(Platform).where(Platform.auto_update.is_(True)).with_for_update()
    ).all():
        end = window_end(platform, now)
        target = newest(session, platform.app)
        if end is None or target is None or target.id == platform.id:
            continue
        if version_key(target.version) < version_key(platform.version):
            continue
        window_start = end - dt.timedelta(hours=platform.window_hours)
        if _updated_since(session, platform.id, window_start):
            continue
        try:
            task = start_update(session, None, platform, target, None, 10, until=end)
        except (Invalid, Conflict) as exc:  # no site to move now; the next window looks again
            log.info(
                "automatic update not started",
                extra={"platform": platform.name, "reason": str(exc)},
            )
            continue
        started.append(task.id)
        log.info(
            "automatic update started",
            extra={"platform": platform.name, "target": target.name, "task_id": task.id},
        )
    return started


def _updated_since(session: Session, platform_id: int, since: dt.datetime) -> bool:
    """An update of the platform's sites under way, or an automatic one started since
    ``since`` (one per window: what it left is the next window's)."""
    for task in session.scalars(
        select(Task).where(
            Task.kind == TaskKind.app_update,
            or_(
                Task.status.in_(ACTIVE_STATES),
                (Task.created_at >= since) & Task.user_id.is_(None),
            ),
        )
    ):
        if task.params.get("from") == platform_id:
            return True
    return False
