"""Platforms and site applications: what the API and pages ask for, checked here; the
work on hosts is done by the tasks in ``panel.apps.tasks``.

Secrets: the admin password is made here, returned once in the response and never
stored; the install task gets its hash in the application's own format (WordPress reads
bcrypt through crypt(3), MediaWiki its ``:pbkdf2:`` form).  The database password is made
by the task on the worker and goes only to the database host (as a verifier) and into
the site's own configuration file."""

from __future__ import annotations

import base64
import hashlib
import secrets
from pathlib import Path

import bcrypt
from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write
from panel.apps import build
from panel.apps.detect import version_key
from panel.apps.models import AppStatus, Platform, SiteApp
from panel.apps.schemas import InstallIn, PlatformIn
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, Forbidden, Invalid
from panel.core.settings import Settings
from panel.core.validation import db_prefix
from panel.databases import service as databases
from panel.databases.models import Engine
from panel.databases.schemas import DatabaseCreate, DatabaseUserCreate
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.tasks.service import ACTIVE_STATES, enqueue, record_started

INSTALLABLE = ("wordpress", "mediawiki")  # apps whose installer Konbit runs


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

    found = session.scalars(
        select(Platform).where(Platform.app == app, Platform.enabled.is_(True))
    ).all()
    return max(found, key=lambda p: (version_key(p.version), p.id), default=None)


def app_hash(app: str, password: str) -> str:
    """The password's hash as the application stores it."""
    if app == "wordpress":  # crypt(3) bcrypt; PHP knows the $2y$ spelling
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


def install(
    session: Session, principal: Principal, site: Site, data: InstallIn
) -> tuple[SiteApp, Task, str]:
    """A site's application on a platform: its database and user (the account's quota),
    the record, the install task.  Returns them with the admin password (shown once)."""
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
    name = f"{db_prefix(account.slug)}app{site.id}"
    db = databases.create_database(
        session, principal, DatabaseCreate(account_id=account.id, name=name, engine=Engine.mariadb)
    )
    databases.create_user(
        session,
        principal,
        DatabaseUserCreate(
            account_id=account.id,
            name=name,
            # Replaced by the install task's own (this one is never seen by anyone).
            password=secrets.token_urlsafe(24),
            databases=[name],
        ),
    )
    password = secrets.token_urlsafe(15)
    app = SiteApp(
        site_id=site.id,
        account_id=account.id,
        platform_id=platform.id,
        app=platform.app,
        title=data.title,
        admin_user=data.admin_user,
        admin_email=data.admin_email,
        database_id=db.id,
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
    session: Session, principal: Principal, platform: Platform, target: Platform,
    site_ids: list[int] | None, batch: int,
) -> Task:  # fmt: skip
    """Every site of ``platform`` (or those named) moved to ``target``, in batches."""
    require_staff(principal)
    if target.app != platform.app or target.id == platform.id:
        raise Invalid("target_id", f"choose another {platform.app} platform to move the sites to")
    stmt = select(SiteApp).where(SiteApp.platform_id == platform.id)
    if site_ids is not None:
        stmt = stmt.where(SiteApp.site_id.in_(site_ids))
    apps = session.scalars(stmt.order_by(SiteApp.site_id)).all()
    if not apps:
        raise Invalid("site_ids", f"no site of {platform.name} to update")
    for a in apps:
        if a.status not in (AppStatus.active, AppStatus.failed):
            raise Conflict(f"site {a.site_id} is {a.status}; wait for it and try again")
    task = enqueue(
        session,
        Task(
            account_id=None,
            kind=TaskKind.app_update,
            params={
                "from": platform.id,
                "to": target.id,
                "site_ids": [a.site_id for a in apps],
                "batch": batch,
            },
            user_id=principal.user.id,
        ),
    )
    audit.record(
        session, principal, TaskKind.app_update, platform, {"task": {"new": task.id}},
        object_type="platform",
    )  # fmt: skip
    return task
