"""Restores of a backup, into its own site (in place) or into a new one; the database
copies that clones share (``Load``, ``copy_databases``)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.core.db import ObjectStatus
from panel.databases.models import Database as DbModel
from panel.tasks.models import Backup
from panel.tasks.run.job import (
    Job,
    TaskFailed,
    load_site,
    rewrite_config,
    run,
    stamp,
    wait_databases,
    wait_site,
)
from panel.tasks.streams import pipe
from provisioners.api.operations import Command
from provisioners.transport import Connection


@dataclass(frozen=True)
class Load:
    """One dump into one database: from ``src`` (a dump's or a database's name) into
    ``dst`` on ``host_id``; ``archive``: its current contents go to the archive first."""

    src: str
    dst: str
    engine: str
    host_id: int
    db_id: int
    archive: bool = False


def copy_databases(
    job: Job,
    source: Callable[[str, str], tuple[Connection, Command]],
    loads: list[Load],
    slug: str,
    first: int,
    span: int,
) -> None:
    """Each load: ``source`` (a dump in the store, or a live database) → its target."""
    with job.hosts() as targets:
        for i, x in enumerate(loads):
            dst, engine = targets(x.host_id), job.engine(x.engine)
            if x.archive:
                run(dst, engine.archive(x.dst, slug), check=True)
                job.say(
                    f"database {x.dst}: its current contents are archived in "
                    f"{engine.archive_dir(slug)}"
                )
            conn, dump = source(x.src, x.engine)
            what = f"database {x.src} → {x.dst}"
            got = pipe(conn, dump.argv, dst, engine.load(x.dst).argv, what)
            job.say(
                f"database {x.src} → {x.dst}: {got.bytes} bytes in {got.seconds:.1f}s",
                first + span * (i + 1) // max(len(loads), 1),
            )


def databases_by_name(session: Session, account_id: int) -> dict[str, DbModel]:
    """Every database of the account (whatever its status), by name."""
    stmt = select(DbModel).where(DbModel.account_id == account_id)
    return {d.name: d for d in session.scalars(stmt)}


def do_restore(job: Job) -> None:
    """From a backup, into its own site (in place: the replaced files and databases are
    archived first) or into a new site made by the API (``target_site_id``; its
    databases are copies, or made again when the backup's are gone)."""
    job.result(site_id=restore(job, job.params()))


def restore(job: Job, p: dict[str, Any]) -> int:
    """A restore (``p``: a restore task's params); returns the site restored into."""
    with job.db.session() as session:
        b = session.get(Backup, p["backup_id"])
        if b is None:
            raise TaskFailed(f"backup {p['backup_id']} no longer exists")
        target, account = load_site(session, p.get("target_site_id") or p["site_id"])
        store_id, path, dumps = b.host_id, b.path, list(b.databases)
        renames: dict[str, str] = p.get("database_names") or {}
        in_place = not p.get("target_site_id")
        replace = set(p["replace"] if "replace" in p else renames.values() if in_place else ())
        by_name = databases_by_name(session, account.id)
        loads: list[Load] = []
        for dump in dumps:
            name = renames.get(dump["name"], dump["name"])
            row = by_name.get(name)
            if row is None or row.status == ObjectStatus.deleting:
                job.say(f"database {name} no longer exists: its dump is left in the backup")
                continue
            loads.append(
                Load(dump["name"], name, dump["engine"], row.host_id, row.id, name in replace)
            )
        dump_files = {d["name"]: d["file"] for d in dumps}
        root = job.site_root(account.slug, target.document_root)
        site_id, web_id, slug, domain = target.id, target.host_id, account.slug, target.domain
    job.say(
        f"restoring backup {p['backup_id']} into {domain}" + (" (in place)" if in_place else ""), 5
    )
    wait_site(job, site_id, domain)
    wait_databases(job, [x.db_id for x in loads])
    files = job.files()
    archive = (
        files.archive_path(slug, f"{domain}-site{site_id}-before-restore-{stamp()}")
        if in_place
        else None
    )
    store = job.store()
    with job.host(store_id) as backup:
        with job.host(web_id) as web:
            got = pipe(
                backup, store.read(f"{path}/files.tar.gz").argv,
                web, files.put_files(
                    root, slug, f"restore-{job.task_id}", archive=archive, gz=True
                ).argv,
                f"files of {domain}",
            )  # fmt: skip
            job.say(
                f"files: {got.bytes} bytes in {got.seconds:.1f}s"
                + (f"; the replaced ones are in {archive}" if archive else ""),
                50,
            )
            rewrite_config(job, web, root, slug, {**renames, **(p.get("user_names") or {})})
        copy_databases(
            job,
            lambda name, _engine: (backup, store.read(f"{path}/{dump_files[name]}")),
            loads,
            slug,
            50,
            45,
        )
    return site_id
