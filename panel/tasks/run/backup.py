"""Backups of a site, its files and its databases, into the store of a backup host."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.core.db import ObjectStatus, utcnow
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser, database_grants
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.sites.models import Site
from panel.tasks.models import Backup
from panel.tasks.run.job import Job, TaskFailed, load_site, run, stamp
from panel.tasks.streams import pipe
from provisioners.transport import TransportError


def site_databases(session: Session, site: Site, names: list[str] | None) -> list[DbModel]:
    """A site's databases: the ones named (``databases`` in the request), else every
    active database of its account (a site has no link to databases of its own)."""
    stmt = select(DbModel).where(
        DbModel.account_id == site.account_id, DbModel.status != ObjectStatus.deleting
    )
    if names is not None:
        stmt = stmt.where(DbModel.name.in_(names))
    return list(session.scalars(stmt.order_by(DbModel.name)))


def do_backup(job: Job) -> None:
    backup_id, size = backup_site(job, job.params())
    job.result(backup_id=backup_id, size_bytes=size)


def backup_site(job: Job, p: dict[str, Any]) -> tuple[int, int]:
    """One backup (``p``: a backup task's params) into the store: its id and size."""
    with job.db.session() as session:
        site, account = load_site(session, p["site_id"])
        rows = site_databases(session, site, p.get("databases"))
        granted: dict[int, list[str]] = {}
        for db_id, user in session.execute(
            select(database_grants.c.database_id, DatabaseUser.name)
            .join(DatabaseUser, DatabaseUser.id == database_grants.c.user_id)
            .where(database_grants.c.database_id.in_([d.id for d in rows]))
            .order_by(DatabaseUser.name)
        ):
            granted.setdefault(db_id, []).append(user)
        dbs = [(d.name, d.engine, d.host_id, granted.get(d.id, [])) for d in rows]
        store = (
            hosts.place(session, "backup", Backup)
            if not p.get("backup_host_id")
            else session.get_one(Host, p["backup_host_id"])
        )
        if "backup" not in store.roles:
            raise TaskFailed(f"host {store.name} is not a backup host")
        root = job.site_root(account.slug, site.document_root)
        site_id, web_id, domain, slug = site.id, site.host_id, site.domain, account.slug
        store_id, store_name = store.id, store.name
        settings = {"php": site.php, "https": site.https, "https_redirect": site.https_redirect}
    path = f"{job.settings.backup_dir}/{slug}/{domain}-site{site_id}/{stamp()}-t{job.task_id}"
    job.say(f"backing up {domain} to {store_name}:{path}", 5)
    manifest: dict[str, Any] = {
        "site": {
            "id": site_id,
            "domain": domain,
            "account": slug,
            "document_root": root,
            **settings,
        },
        "created_at": utcnow().isoformat(),
        "databases": [],
    }
    backups = job.store()
    try:
        with job.host(store_id) as backup, job.host(web_id) as web, job.hosts() as db_hosts:
            copied = pipe(
                web, job.files().tar_out(root, gz=True).argv,
                backup, backups.store(f"{path}/files.tar.gz").argv,
                f"files of {domain}",
            )  # fmt: skip
            manifest["files"] = {
                "file": "files.tar.gz",
                "bytes": copied.bytes,
                "sha256": copied.sha256,
            }
            job.say(f"files: {copied.bytes} bytes in {copied.seconds:.1f}s", 50)
            for i, (name, engine, db_host, users) in enumerate(dbs):
                file = f"db-{name}.{engine}.sql.gz"
                got = pipe(
                    db_hosts(db_host), job.engine(engine).dump(name).argv,
                    backup, backups.store(f"{path}/{file}").argv,
                    f"{engine} database {name}",
                )  # fmt: skip
                manifest["databases"].append(
                    {
                        "name": name,
                        "engine": engine,
                        "file": file,
                        "bytes": got.bytes,
                        "sha256": got.sha256,
                        "users": users,  # a restore grants them again a remade database
                    }
                )
                job.say(
                    f"database {name}: {got.bytes} bytes in {got.seconds:.1f}s",
                    50 + 40 * (i + 1) // max(len(dbs), 1),
                )
            backup.run(
                backups.store(f"{path}/manifest.json").argv,
                stdin=json.dumps(manifest, indent=2).encode(),
                check=True,
            )
            size = int(run(backup, backups.size(path), check=True).text().strip() or 0)
    except BaseException:
        _remove_quietly(job, store_id, path)
        raise
    with job.db.session() as session:
        row = Backup(
            account_id=p["account_id"],
            site_id=site_id,
            domain=domain,
            host_id=store_id,
            path=path,
            size_bytes=size,
            files_bytes=manifest["files"]["bytes"],
            databases=manifest["databases"],
            site=settings,
            task_id=job.task_id,
            scheduled=bool(p.get("scheduled")),
        )
        session.add(row)
        session.commit()
        backup_id = row.id
    job.say(f"backup {backup_id}: {size} bytes", 95)
    prune(job, site_id)
    return backup_id, size


def _remove_quietly(job: Job, host_id: int, path: str) -> None:
    try:
        with job.host(host_id) as conn:
            run(conn, job.store().remove(path))
    except TransportError:
        pass


def prune(job: Job, site_id: int) -> None:
    """Retention: keep the newest ``backup_keep_count`` backups of a site that are younger
    than ``backup_keep_days``; the newest one is kept whatever its age."""
    keep, days = job.settings.backup_keep_count, job.settings.backup_keep_days
    cutoff = utcnow() - dt.timedelta(days=days)
    with job.db.session() as session:
        rows = session.scalars(
            select(Backup).where(Backup.site_id == site_id).order_by(Backup.id.desc())
        ).all()
        drop = [
            (b.id, b.host_id, b.path)
            for i, b in enumerate(rows)
            if i > 0 and (i >= keep or b.created_at < cutoff)
        ]
    with job.hosts() as stores:
        for backup_id, host_id, path in drop:
            run(stores(host_id), job.store().remove(path), check=True)
            with job.db.session() as session:
                row = session.get(Backup, backup_id)
                if row is not None:
                    session.delete(row)
                session.commit()
            job.say(f"retention: removed backup {backup_id}")
