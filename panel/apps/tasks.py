# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key, which PEP 544 allows and mypy flags:
# python/mypy#4717.)
"""The application tasks: install a site on a platform; update sites to another platform
(backup, switch, the application's own updater, health check, rollback to the backup).

Host work goes through the ``Applications`` operations of the installed plugins; the
platform's build is uploaded to a web host the first time one of its sites needs it."""

from __future__ import annotations

import datetime as dt
import secrets
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.apps.models import AppStatus, Platform, SiteApp
from panel.apps.service import WITHOUT_DATABASE, artifact_path
from panel.core.db import ObjectStatus, utcnow
from panel.core.objects import mark_pending
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser
from panel.databases.secrets import verifier_for
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.tasks.run.backup import backup_site
from panel.tasks.run.job import Job, TaskFailed, load_site, run, wait_databases, wait_site
from panel.tasks.run.restore import restore
from panel.tasks.streams import probe
from provisioners.api import Applications, NotOffered, offered
from provisioners.transport import Connection, TransportError

WP_SALTS = (
    "AUTH_KEY",
    "SECURE_AUTH_KEY",
    "LOGGED_IN_KEY",
    "NONCE_KEY",
    "AUTH_SALT",
    "SECURE_AUTH_SALT",
    "LOGGED_IN_SALT",
    "NONCE_SALT",
)


def ops(job: Job) -> Applications:
    try:
        return offered(job.plugins, Applications)
    except NotOffered as exc:
        raise TaskFailed(str(exc)) from None


@dataclass(frozen=True)
class Where:
    """A site application's place: what the host commands need."""

    app_id: int
    site_id: int
    domain: str
    slug: str
    root: str
    host_id: int
    app: str
    title: str
    account_id: int


def _where(job: Job, app_id: int) -> Where:
    with job.db.session() as session:
        row = session.get(SiteApp, app_id)
        if row is None:
            raise TaskFailed(f"site application {app_id} no longer exists")
        site, account = load_site(session, row.site_id)
        return Where(
            row.id,
            site.id,
            site.domain,
            account.slug,
            job.site_root(account.slug, site.document_root),
            site.host_id,
            row.app,
            row.title,
            row.account_id,
        )


def _set(job: Job, app_id: int, **values: Any) -> None:
    with job.db.session() as session:
        row = session.get(SiteApp, app_id)
        if row is not None:
            for key, value in values.items():
                setattr(row, key, value)
            session.commit()


def ensure_platform(job: Job, conn: Connection, platform_id: int) -> str:
    """The platform on the host (uploaded from the panel's store if the host lacks it);
    returns its name."""
    with job.db.session() as session:
        p = session.get_one(Platform, platform_id)
        name, sha = p.name, p.sha256
        path = artifact_path(job.settings, p)
    apps = ops(job)
    held = apps.parse_platforms(run(conn, apps.platforms(), check=True).text())
    if held.get(name) == sha:
        return name
    if not path.is_file():
        raise TaskFailed(
            f"platform {name}'s build is not in the panel's store ({path}): make the platform "
            "again, or copy the file back"
        )
    data = path.read_bytes()
    got = run(conn, apps.put_platform(name, sha, data))
    if not got.ok:
        raise TaskFailed(
            f"platform {name} could not be put on {conn.target.name}: {got.error_text(500)}"
        )
    job.say(f"platform {name} put on {conn.target.name} ({len(data)} bytes)")
    return name


def platform_follows(job: Job, conn: Connection, site_id: int) -> None:
    """A site on a platform copied to another web host: the platform there too, and the
    site's links to it made root's again (the copy gave them to the account), before the
    new host is asked to serve the site."""
    with job.db.session() as session:
        app_id = session.scalar(select(SiteApp.id).where(SiteApp.site_id == site_id))
    if app_id is None:
        return
    w = _where(job, app_id)
    with job.db.session() as session:
        platform_id = session.get_one(SiteApp, app_id).platform_id
    name = ensure_platform(job, conn, platform_id)
    run(conn, ops(job).link(w.root, w.slug, name), check=True)
    job.say(f"platform {name} is on {conn.target.name}, {w.domain} linked to it")


def _app_run(
    job: Job, conn: Connection, w: Where, action: str, values: dict[str, Any] | None = None
) -> dict[str, Any]:
    apps = ops(job)
    got = run(conn, apps.run(w.app, action, w.root, w.slug, values or {}))
    result = apps.parse_result(got.text())
    if not got.ok or result is None:
        raise TaskFailed(
            f"{w.app} {action} of {w.domain} failed: "
            + " ".join(part for part in (got.text()[-1500:].strip(), got.error_text(1500)) if part)
            or f"exit code {got.exit_code}"
        )
    return result


def health(job: Job, conn: Connection, w: Where, version: str) -> str:
    """The site answers its front page with its own content, served by ``version``."""
    status = _app_run(job, conn, w, "status")
    if status.get("version") != version:
        raise TaskFailed(f"{w.domain} runs {w.app} {status.get('version')}, {version} expected")
    if status.get("db_current") is False:
        raise TaskFailed(f"{w.domain}'s database is not at the code's version after the update")
    page, path = probe(conn, w.domain), "/"
    for _ in range(3):  # the front page may be a redirect within the site (a wiki's main page)
        target = urllib.parse.urlsplit(page.headers.get("location", ""))
        if page.status not in (301, 302, 303, 307, 308) or target.hostname not in (None, w.domain):
            break
        path = urllib.parse.urlunsplit(("", "", target.path or "/", target.query, ""))
        page = probe(conn, w.domain, path)
    body = page.body.decode("utf-8", "replace")
    if page.status != 200 or w.title not in body:
        raise TaskFailed(
            f"{w.domain}{path} answers {page.status}"
            + (f" (to {page.headers['location']})" if "location" in page.headers else "")
            + ("" if page.status != 200 else f" without its title {w.title!r}")
        )
    return f"{w.domain}: 200 with its title, {w.app} {version}"


def do_install(job: Job) -> None:
    """Database password, platform on the host, links, the application's installer."""
    app_id = int(job.params()["site_app_id"])
    w = _where(job, app_id)
    try:
        _install(job, w)
    except BaseException as exc:
        _set(job, app_id, status=AppStatus.failed, status_reason=str(exc)[:2000], admin_hash=None)
        raise
    job.result(site_id=w.site_id, url=f"http://{w.domain}/")


def _install(job: Job, w: Where) -> None:
    wait_site(job, w.site_id, w.domain)
    with job.db.session() as session:
        row = session.get_one(SiteApp, w.app_id)
        platform = session.get_one(Platform, row.platform_id)
        values: dict[str, Any] = {
            "url": f"http://{w.domain}",
            "title": row.title,
            "admin_user": row.admin_user,
            "admin_email": row.admin_email,
            "admin_hash": row.admin_hash,
            "lang": "en",
        }
        db_ids = None if w.app in WITHOUT_DATABASE else _database(session, row, values)
        if w.app == "wordpress":
            values["salts"] = {k: secrets.token_urlsafe(48) for k in WP_SALTS}
        version, platform_id = platform.version, platform.id
        session.commit()
    if values["admin_hash"] is None:
        raise TaskFailed("this install already ran once; its admin password is gone: start again")
    if db_ids is not None:
        db_id, user_id, db_host_id = db_ids
        job.say(f"database {values['db_name']} and its user on their host", 5)
        job.converge(db_host_id, "database host")
        wait_databases(job, [db_id])
        with job.db.session() as session:
            u = session.get_one(DatabaseUser, user_id)
            if u.status != ObjectStatus.active:
                raise TaskFailed(f"database user {u.name}: {u.status_reason or u.status}")
    with job.host(w.host_id) as conn:
        name = ensure_platform(job, conn, platform_id)
        run(conn, ops(job).link(w.root, w.slug, name), check=True)
        job.say(f"{w.domain} points at platform {name}", 40)
        _app_run(job, conn, w, "install", values)
        job.say(f"{w.app} installed", 80)
        job.say(health(job, conn, w, version), 95)
    _set(
        job, w.app_id, status=AppStatus.active, status_reason=None, admin_hash=None,
        version=version, installed_at=utcnow(),
    )  # fmt: skip


def _database(session: Session, row: SiteApp, values: dict[str, Any]) -> tuple[int, int, int]:
    """The site's database user gets a new password (made here, on the worker), which
    goes into ``values`` for the site's configuration; returns the database's, its user's
    and its host's ids."""
    db = session.get(DbModel, row.database_id) if row.database_id else None
    if db is None or db.status == ObjectStatus.deleting:
        raise TaskFailed("the site's database is gone; delete the application and start again")
    user = session.scalars(
        select(DatabaseUser).where(
            DatabaseUser.account_id == row.account_id,
            DatabaseUser.name == db.name,
            DatabaseUser.engine == db.engine,
        )
    ).one()
    password = secrets.token_urlsafe(24)
    user.password_hash = verifier_for(db.engine, password)
    mark_pending(user)
    hosts.bump_generations(session, [db.host_id])
    db_host = session.get_one(Host, db.host_id)
    values.update(
        db_type="mysql",
        db_name=db.name,
        db_user=user.name,
        db_password=password,
        db_host=db_host.address,
    )
    return db.id, user.id, db.host_id


def _batches(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def do_update(job: Job) -> None:
    """Each site: a backup, the switch, the application's updater, the health check; any
    failure restores the backup (files, with the old platform's link, and databases).
    Batch by batch: after a batch with a site rolled back, the rest are left as they are
    (a broken build reaches one batch, not every site).  An automatic update starts no
    site after its maintenance window's end (``until``); the next window goes on.
    Per-site results in the task's result; the task fails if any site was rolled back."""
    p = job.params()
    until = dt.datetime.fromisoformat(p["until"]) if p.get("until") else None
    with job.db.session() as session:
        target = session.get_one(Platform, p["to"])
        to_id, version = target.id, target.version
        apps = {
            a.site_id: a.id
            for a in session.scalars(
                select(SiteApp).where(
                    SiteApp.site_id.in_(p["site_ids"]), SiteApp.platform_id == p["from"]
                )
            )
        }
    results: dict[str, str] = {}
    site_ids = [s for s in p["site_ids"] if s in apps]
    done, stop = 0, ""
    for chunk in _batches(site_ids, int(p.get("batch") or 10)):
        if stop:
            results.update((str(s), f"not tried: {stop}") for s in chunk)
            continue
        for site_id in chunk:
            if until is not None and utcnow() >= until:
                stop = "the maintenance window closed; the next one goes on"
                results[str(site_id)] = f"not tried: {stop}"
                continue
            w = _where(job, apps[site_id])
            _set(job, w.app_id, status=AppStatus.updating, status_reason=None)
            results[str(site_id)] = _update_one(job, w, p["from"], to_id, version)
            done += 1
            job.say(f"{w.domain}: {results[str(site_id)]}", 100 * done // max(len(site_ids), 1))
        job.result(sites=results)
        outcomes = [results[str(s)] for s in chunk]
        if not stop and any(not r.startswith(("updated", "not tried")) for r in outcomes):
            stop = "an earlier batch was rolled back"
    job.result(sites=results)
    failed = [s for s, r in results.items() if not r.startswith(("updated", "not tried"))]
    untried = sum(r.startswith("not tried") for r in results.values())
    left = f"; {untried} not tried ({stop}): start the update again for them" if untried else ""
    if failed:
        raise TaskFailed(
            f"{len(failed)} of {len(results)} sites were rolled back to their backup: "
            + ", ".join(failed)
            + left
        )
    if untried:
        job.say(f"{untried} sites not tried: {stop}")


def _update_one(job: Job, w: Where, from_id: int, to_id: int, version: str) -> str:
    with job.part(0, 100):
        backup_id, _size = backup_site(
            job, {"site_id": w.site_id, "account_id": w.account_id, "databases": _db_names(job, w)}
        )
    try:
        with job.host(w.host_id) as conn:
            name = ensure_platform(job, conn, to_id)
            run(conn, ops(job).link(w.root, w.slug, name), check=True)
            _set(job, w.app_id, platform_id=to_id)
            _app_run(job, conn, w, "update")
            said = health(job, conn, w, version)
    except (TaskFailed, TransportError) as exc:
        job.say(f"{w.domain}: {exc}; restoring backup {backup_id}")
        _set(job, w.app_id, platform_id=from_id)
        try:
            with job.part(0, 100):
                restore(
                    job,
                    {"backup_id": backup_id, "site_id": w.site_id, "replace": _db_names(job, w)},
                )
            with job.host(w.host_id) as conn:
                run(conn, ops(job).link(w.root, w.slug, _platform_name(job, from_id)), check=True)
                with job.db.session() as session:
                    old = session.get_one(Platform, from_id).version
                job.say(health(job, conn, w, old))
        except (TaskFailed, TransportError) as again:
            _set(
                job,
                w.app_id,
                status=AppStatus.failed,
                status_reason=f"{exc}; rollback: {again}"[:2000],
            )
            return f"failed, and the rollback too: {again}"
        _set(
            job, w.app_id, status=AppStatus.active, status_reason=f"update refused: {exc}"[:2000],
            refused_platform_id=to_id,
        )  # fmt: skip
        return f"rolled back to backup {backup_id}: {exc}"
    _set(
        job, w.app_id, status=AppStatus.active, status_reason=None, version=version,
        refused_platform_id=None,
    )  # fmt: skip
    return f"updated ({said})"


def _platform_name(job: Job, platform_id: int) -> str:
    with job.db.session() as session:
        return session.get_one(Platform, platform_id).name


def _db_names(job: Job, w: Where) -> list[str]:
    with job.db.session() as session:
        row = session.get_one(SiteApp, w.app_id)
        db = session.get(DbModel, row.database_id) if row.database_id else None
        return [db.name] if db else []
