"""Moves: a site to another web host, databases to another db host, a whole account.

Until the new host holds a working copy, any failure points everything back at the old
host, which was never touched; what the new host got is dropped (``cleanup``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from panel.accounts.models import Account
from panel.apps.tasks import platform_follows
from panel.core.db import ObjectStatus
from panel.core.objects import mark_pending
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser
from panel.databases.service import serves as serves_engine
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.objects.service import follow_site
from panel.sites.models import Site
from panel.tasks.run.cleanup import drop_all, leftovers
from panel.tasks.run.job import (
    Job,
    TaskFailed,
    load_site,
    require_active,
    rewrite_config,
    run,
    stamp,
    wait_databases,
)
from panel.tasks.streams import pipe, probe
from provisioners.transport import Connection, TransportError


def do_migrate(job: Job) -> None:
    p = job.params()
    old_id = migrate_site(job, p["site_id"], p["host_id"])
    job.result(site_id=p["site_id"], old_host_id=old_id, host_id=p["host_id"])


def migrate_site(job: Job, site_id: int, new_id: int) -> int:
    """Move a site to another web host.  Until the new host serves it (checked by a GET
    through the new host's own loopback), any failure moves it back: the old host is
    never touched before that, so the site keeps serving from it.  Then the old host
    drops the vhost and its copy of the files goes to its archive.  Returns the old
    host's id."""
    with job.db.session() as session:
        site, account = load_site(session, site_id)
        new = session.get_one(Host, new_id)
        old_id = site.host_id
        if old_id == new_id:
            raise TaskFailed(f"{site.domain} is already on {new.name}")
        if "web" not in new.roles or not new.enabled:
            raise TaskFailed(f"host {new.name} is not an enabled web host")
        root = job.site_root(account.slug, site.document_root)
        domain, slug, site_id = site.domain, account.slug, site.id
    tag = f"migrate-{job.task_id}"
    files, tls = job.files(), job.keys()
    with job.host(old_id) as a, job.host(new_id) as b:
        before = probe(a, domain)
        job.say(f"{domain} answers {before.status} on the old host", 5)
        keys = run(a, tls.has_keys(site_id)).ok
        switched = False
        try:
            if keys:  # ACME and uploaded keys: the vhost needs them before it validates
                pipe(
                    a, tls.keys_out(site_id).argv,
                    b, tls.put_keys().argv,
                    f"TLS keys of {domain}",
                )  # fmt: skip
                job.say("TLS keys copied", 10)
            _switch(job, site_id, old_id, new_id)
            switched = True
            require_active(
                job.db, site_id, job.converge(new_id, "new host"), "the new host refused the site"
            )
            job.say("the new host carries the vhost", 40)
            got = pipe(
                a, files.tar_out(root, gz=False).argv,
                b, files.put_files(root, slug, tag, archive=None, gz=False).argv,
                f"files of {domain}",
            )  # fmt: skip
            job.say(f"files: {got.bytes} bytes in {got.seconds:.1f}s", 70)
            platform_follows(job, b, site_id)
            after = probe(b, domain)
            ok = after.status == before.status if before.status < 500 else after.status < 500
            if not ok:
                raise TaskFailed(
                    f"{domain} answers {after.status} on the new host, "
                    f"{before.status} on the old one"
                )
            job.say(f"{domain} answers {after.status} on the new host", 80)
        except BaseException as exc:
            job.say(f"moving back to the old host: {exc}")
            _move_back(job, site_id, old_id, new_id, root, keys, switched)
            raise
    report = job.converge(old_id, "old host")
    if report.result not in ("applied", "noop"):
        job.say("the old host did not drop the vhost yet; the worker retries it")
    with job.host(old_id) as a:
        archived = files.archive_path(slug, f"{domain}-site{site_id}-migrated")
        run(a, files.archive(root, archived), check=True)
        if keys:
            run(a, tls.remove_keys(site_id), check=True)
    job.say(f"the old copy is archived on the old host ({archived}-<time>)", 95)
    return old_id


def _switch(job: Job, site_id: int, from_id: int, to_id: int) -> None:
    """The site belongs to ``to_id`` now; only that host is made dirty here."""
    with job.db.session() as session:
        site = session.get_one(Site, site_id)
        site.host_id = to_id
        mark_pending(site)
        follow_site(session, site)
        hosts.bump_generations(session, [to_id])
        session.commit()


def _move_back(
    job: Job,
    site_id: int,
    old_id: int,
    new_id: int,
    root: str,
    keys: bool,
    switched: bool,
) -> None:
    """The site belongs to the old host again, which settles it active whatever the new
    host does; what the new host got is dropped (now, or by a clean-up task)."""
    if switched:
        with job.db.session() as session:
            site = session.get_one(Site, site_id)
            site.host_id = old_id
            follow_site(session, site)
            account_id = site.account_id
            hosts.bump_generations(session, [old_id, new_id])
            session.commit()
        # The new host may blame its leftover vhost on the site (and fail it): only then
        # is the site made pending again, for the old host to settle it active.
        _settle_quietly(job, new_id, "new host (dropping the vhost)")
        with job.db.session() as session:
            mark_pending(session.get_one(Site, site_id))
            session.commit()
        _settle_quietly(job, old_id, "old host")
    else:
        with job.db.session() as session:
            account_id = session.get_one(Site, site_id).account_id
    paths = [root, *([job.keys().key_dir(site_id)] if keys else [])]
    leftovers(job, new_id, account_id, paths=paths)


def _settle_quietly(job: Job, host_id: int, what: str) -> None:
    try:
        job.converge(host_id, what)
    except Exception as exc:  # the worker reconciles the host again on its own
        job.say(f"{what} did not settle yet (the worker retries it): {exc}")


def do_migrate_database(job: Job) -> None:
    p = job.params()
    old_id = migrate_databases(job, [p["database_id"]], p["host_id"])
    job.result(database_id=p["database_id"], old_host_id=old_id, host_id=p["host_id"])


def migrate_databases(job: Job, db_ids: list[int], new_id: int) -> int:
    """Move databases of one account from one db host to another, with the users whose
    grants are all on them: create there, copy the data, point the account's sites'
    config at the new host, then dump the old copies into the old host's archive and
    drop them.  On a failure before every copy completed, everything points back.
    Returns the old host's id."""
    with job.db.session() as session:
        dbs = session.scalars(select(DbModel).where(DbModel.id.in_(db_ids))).all()
        if len(dbs) != len(set(db_ids)):
            raise TaskFailed("a database to move no longer exists")
        old_ids = {d.host_id for d in dbs}
        account_ids = {d.account_id for d in dbs}
        if len(old_ids) != 1 or len(account_ids) != 1:
            raise TaskFailed("databases move together only from one host of one account")
        old_id, account_id = old_ids.pop(), account_ids.pop()
        new, old = session.get_one(Host, new_id), session.get_one(Host, old_id)
        if "db" not in new.roles or not new.enabled or old_id == new_id:
            raise TaskFailed(f"host {new.name} is not another enabled db host")
        on_old = session.scalars(
            select(DatabaseUser)
            .where(DatabaseUser.account_id == account_id, DatabaseUser.host_id == old_id)
            .options(selectinload(DatabaseUser.databases))
        ).all()
        ids = {d.id for d in dbs}
        moving = [u for u in on_old if any(x.id in ids for x in u.databases)]
        for u in moving:
            others = [x.name for x in u.databases if x.id not in ids]
            if others:
                raise TaskFailed(
                    f"user {u.name} also has {', '.join(others)}; move those databases "
                    "together (or the whole account)"
                )
        slug = session.get_one(Account, account_id).slug
        moved = [(d.name, d.engine) for d in dbs]
        users = [(u.name, u.engine) for u in moving]
        frozen: list[tuple[str, str]] = []
        kept_dumps = {n: job.engine(e).kept_path(slug, n, stamp()) for n, e in moved}
        hostnames = {old.address: new.address, old.name: new.name}
        sites = [
            (s.host_id, job.site_root(slug, s.document_root))
            for s in session.scalars(
                select(Site).where(
                    Site.account_id == account_id, Site.status != ObjectStatus.deleting
                )
            )
        ]
        objs: list[DbModel | DatabaseUser] = [*dbs, *moving]
        for obj in objs:
            obj.host_id = new_id
            mark_pending(obj)
        hosts.bump_generations(session, [new_id])
        session.commit()
        user_ids = [u.id for u in moving]
    job.say(
        f"moving databases {', '.join(n for n, _ in moved)} and users "
        f"{', '.join(n for n, _ in users) or '-'} from {old.name} to {new.name}",
        5,
    )
    try:
        job.converge(new_id, "new db host")
        wait_databases(job, db_ids)
        frozen = users
        _copy_locked(job, old_id, new_id, moved, users, kept_dumps)
    except BaseException as exc:
        job.say(f"moving back: {exc}")
        _databases_back(job, db_ids, user_ids, old_id, new_id, moved, frozen, kept_dumps)
        raise
    with job.hosts() as webs:
        for web_id, root in sites:
            rewrite_config(job, webs(web_id), root, slug, hostnames)
    _retire(job, old_id, moved, users, kept_dumps)
    job.say("the old copies, as sent, are in the old host's archive; dropped there", 95)
    return old_id


def _retire(
    job: Job,
    old_id: int,
    moved: list[tuple[str, str]],
    users: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """The old copies: their dumps (as sent) kept in the old host's archive, then dropped
    with their users."""
    with job.host(old_id) as a:
        for engine, paths in _by_engine(moved, kept).items():
            run(a, job.engine(engine).keep_dumps(paths), check=True)
        drop_all(job, a, moved, users)


def _copy_locked(
    job: Job,
    old_id: int,
    new_id: int,
    moved: list[tuple[str, str]],
    users: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """The databases' data, old host → new host, their users locked out meanwhile; the
    old host keeps what it sent (``kept``: the archive paths)."""
    with job.host(old_id) as a, job.host(new_id) as b:
        freeze(job, a, users, lock=True)
        job.say(
            f"users {', '.join(n for n, _ in users) or '-'} locked out on the old host "
            "until the move ends: nothing written meanwhile is lost"
        )
        for i, (name, engine) in enumerate(moved):
            got = pipe(
                a,
                job.engine(engine).dump_and_keep(name, kept[name]).argv,
                b,
                job.engine(engine).load(name).argv,
                f"database {name}",
            )
            job.say(
                f"{name}: {got.bytes} bytes in {got.seconds:.1f}s",
                10 + 60 * (i + 1) // len(moved),
            )


def _databases_back(
    job: Job,
    db_ids: list[int],
    user_ids: list[int],
    old_id: int,
    new_id: int,
    moved: list[tuple[str, str]],
    frozen: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """A database move that failed: everything points at the old host again and is
    settled there first (the old copies were never touched; its users may log in
    again), then what the new host got so far is dropped."""
    if frozen:
        try:
            with job.host(old_id) as a:
                freeze(job, a, frozen, lock=False)
                for engine, paths in _by_engine(moved, kept).items():
                    run(a, job.engine(engine).discard_dumps(paths))
        except Exception as exc:
            job.say(f"users {', '.join(n for n, _ in frozen)} still locked on the old host: {exc}")
    with job.db.session() as session:
        back: list[DbModel | DatabaseUser] = [
            *session.scalars(select(DbModel).where(DbModel.id.in_(db_ids))),
            *session.scalars(select(DatabaseUser).where(DatabaseUser.id.in_(user_ids))),
        ]
        for obj in back:
            obj.host_id = old_id
            mark_pending(obj)
        account_id = back[0].account_id
        users = [(u.name, u.engine) for u in back if isinstance(u, DatabaseUser)]
        hosts.bump_generations(session, [old_id, new_id])
        session.commit()
    _settle_quietly(job, old_id, "old db host")
    leftovers(job, new_id, account_id, databases=moved, users=users)


def do_migrate_account(job: Job) -> None:
    """Every site of the account to one web host, then every database to one db host,
    each as a single move would; one that fails stays where it was (and serving) and the
    others go on.  The task fails at the end naming the ones left behind."""
    p = job.params()
    web_to: int = p.get("web_host_id") or 0
    db_to: int = p.get("db_host_id") or 0
    with job.db.session() as session:
        site_rows = session.scalars(
            select(Site).where(Site.account_id == p["account_id"]).order_by(Site.id)
        ).all()
        sites = [(s.id, s.domain, s.status) for s in site_rows if web_to and s.host_id != web_to]
        db_rows = session.scalars(
            select(DbModel).where(DbModel.account_id == p["account_id"]).order_by(DbModel.id)
        ).all()
        target = session.get_one(Host, db_to) if db_to else None
        groups: dict[int, list[tuple[int, str, str]]] = {}
        for d in db_rows:
            if db_to and d.host_id != db_to:
                served = target is not None and serves_engine(target, d.engine)
                status = d.status if served else f"{d.engine}, not served there"
                groups.setdefault(d.host_id, []).append((d.id, d.name, status))
    steps = len(sites) + len(groups)
    job.say(f"moving {len(sites)} sites and {sum(map(len, groups.values()))} databases", 1)
    left: list[str] = []
    moved = 0
    for i, (site_id, domain, status) in enumerate(sites):
        if status != ObjectStatus.active:
            left.append(f"{domain} (it is {status})")
            continue
        with job.part(100 * i // steps, 100 * (i + 1) // steps):
            try:
                migrate_site(job, site_id, web_to)
                moved += 1
            except (TaskFailed, TransportError) as exc:
                left.append(f"{domain} ({exc})")
    for j, rows in enumerate(groups.values()):
        i = len(sites) + j
        names = ", ".join(n for _, n, _ in rows)
        bad = [f"{n} (it is {st})" for _, n, st in rows if st != ObjectStatus.active]
        if bad:
            left += bad
            continue
        with job.part(100 * i // steps, 100 * (i + 1) // steps):
            try:
                migrate_databases(job, [x for x, _, _ in rows], db_to)
                moved += len(rows)
            except (TaskFailed, TransportError) as exc:
                left.append(f"{names} ({exc})")
    job.result(moved=moved, left=len(left))
    if left:
        raise TaskFailed(f"moved {moved}; still on their old hosts: " + "; ".join(left))


def _by_engine(dbs: list[tuple[str, str]], paths: dict[str, str]) -> dict[str, list[str]]:
    """The paths of ``paths`` (by database name) for each engine of ``dbs``."""
    grouped: dict[str, list[str]] = {}
    for name, engine in dbs:
        grouped.setdefault(engine, []).append(paths[name])
    return grouped


def freeze(job: Job, conn: Connection, users: Sequence[tuple[str, str]], lock: bool) -> None:
    """Lock the users out of the old host (their sessions ended) while their databases
    are copied, or let them in again: a write during the copy fails visibly instead of
    landing in a copy that is about to be dropped."""
    for engine in sorted({e for _, e in users}):
        names = [n for n, e in users if e == engine]
        run(conn, job.engine(engine).freeze(names, lock=lock), check=True)
