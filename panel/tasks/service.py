"""Starting lifecycle tasks: checks and new objects in the request's transaction, the
copying itself in the worker (``panel.tasks.run``).

A site's databases: a site has no link to databases of its own, so a backup or clone
takes the databases the request names (``databases``), or every database of the site's
account when it names none.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from panel.accounts.models import Account
from panel.accounts.service import account_for_write, check_count_quota
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import Conflict, Invalid
from panel.core.objects import mark_pending
from panel.core.outbox import outbox
from panel.core.validation import db_prefix
from panel.databases import service as databases
from panel.databases.models import Database, DatabaseUser
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.sites import service as sites
from panel.sites.models import Site
from panel.sites.schemas import SiteCreate
from panel.tasks.models import Backup, BackupFrequency, BackupSchedule, Task, TaskKind
from panel.tasks.schemas import CloneIn, ScheduleIn

ACTIVE_STATES = ("queued", "running")


def enqueue(session: Session, task: Task) -> Task:
    """Add the task; the worker is nudged after the commit (panel.worker.tasks)."""
    session.add(task)
    session.flush()
    outbox(session).queued_tasks.append(task.id)
    return task


def record_started(session: Session, principal: Principal, task: Task, obj: Any) -> None:
    """The audit event of a started task (API and web panel alike), on ``obj``: the site,
    database, backup or account it was started from."""
    audit.record(
        session, principal, task.kind, obj, {"task": {"new": task.id}}, account_id=task.account_id
    )


def _start(
    session: Session,
    principal: Principal | None,
    kind: TaskKind,
    account_id: int,
    params: dict[str, Any],
    *,
    site_id: int | None = None,
    database_id: int | None = None,
) -> Task:
    """A new task of ``kind``, queued for the worker, started by ``principal`` (None: the
    scheduler)."""
    return enqueue(
        session,
        Task(
            account_id=account_id,
            kind=kind,
            site_id=site_id,
            database_id=database_id,
            params=params,
            user_id=principal.user.id if principal else None,
        ),
    )


def _refuse_if_under_way(session: Session, message: str, condition: Any) -> None:
    """409 (``message`` with the task's id) when a queued or running task matches
    ``condition``: two tasks must not move or overwrite the same object at once."""
    running = session.scalar(
        select(Task.id).where(Task.status.in_(ACTIVE_STATES), condition).limit(1)
    )
    if running:
        raise Conflict(message.format(id=running))


def _account_move(account_id: int) -> Any:
    return (Task.account_id == account_id) & (Task.kind == TaskKind.migrate_account)


def _busy(session: Session, site: Site) -> None:
    _refuse_if_under_way(
        session,
        "Task {id} is restoring or moving this site; wait for it to end.",
        ((Task.site_id == site.id) & Task.kind.in_([TaskKind.restore, TaskKind.migrate]))
        | _account_move(site.account_id),
    )


def _check_databases(session: Session, site: Site, names: list[str] | None) -> None:
    if names is None:
        return
    found = set(
        session.scalars(
            select(Database.name).where(
                Database.account_id == site.account_id, Database.name.in_(names)
            )
        )
    )
    missing = [n for n in names if n not in found]
    if missing:
        raise Invalid("databases", f"not databases of this account: {', '.join(missing)}")


def _need_backup_host(session: Session) -> None:
    if not hosts.hosts_with_role(session, "backup"):
        raise Conflict(
            "No backup host is available; the provider's staff must add one "
            "(`konbit host add --role backup`)."
        )


def start_backup(
    session: Session,
    principal: Principal | None,
    site: Site,
    databases: list[str] | None = None,
    scheduled: bool = False,
) -> Task:
    _need_backup_host(session)
    _check_databases(session, site, databases)
    params: dict[str, Any] = {"site_id": site.id, "account_id": site.account_id}
    if databases is not None:
        params["databases"] = databases
    if scheduled:
        params["scheduled"] = True
    return _start(session, principal, TaskKind.backup, site.account_id, params, site_id=site.id)


def _new_name(session: Session, model: Any, prefix: str, old: str, taken: set[str]) -> str:
    """``old`` with a number after it (``acme_wp`` → ``acme_wp2``), free and valid."""
    suffix = old[len(prefix) :] if old.startswith(prefix) else old
    for n in range(2, 1000):
        name = f"{prefix}{suffix[: 32 - len(str(n))]}{n}"
        if name in taken:
            continue
        if session.scalar(select(model.id).where(model.name == name)) is None:
            taken.add(name)
            return name
    raise Conflict(f"No free name for a copy of {old}; name it in database_names.")


def copy_databases(
    session: Session,
    account: Account,
    sources: list[Database],
    names: dict[str, str] | None,
    users_into: dict[str, str] | None = None,
) -> dict[str, str]:
    """New databases (same engine and host as each source) and new users for them: each
    user that holds a grant on a copied database gets a copy with the same password,
    granted the copies.  Returns {old name: new name}; the users' go in ``users_into``."""
    from panel.databases.service import _namespaced

    prefix = db_prefix(account.slug)
    taken: set[str] = set()
    mapping: dict[str, str] = {}
    copies: dict[int, Database] = {}
    for i, src in enumerate(sources):
        check_count_quota(session, account, "databases", Database)
        wanted = (names or {}).get(src.name)
        if wanted is None:
            new = _new_name(session, Database, prefix, src.name, taken)
        else:
            new = _namespaced(account, wanted, "database", f"database_names.{i}")
            if session.scalar(select(Database.id).where(Database.name == new)) or new in taken:
                raise Conflict(f"A database named {new} already exists.")
            taken.add(new)
        row = Database(account_id=account.id, host_id=src.host_id, engine=src.engine, name=new)
        session.add(row)
        session.flush()
        copies[src.id] = row
        mapping[src.name] = new
    users = session.scalars(
        select(DatabaseUser)
        .where(DatabaseUser.account_id == account.id, DatabaseUser.status != ObjectStatus.deleting)
        .options(selectinload(DatabaseUser.databases))
    ).all()
    for user in users:
        granted = [copies[d.id] for d in user.databases if d.id in copies]
        if not granted:
            continue
        copy = DatabaseUser(
            account_id=account.id,
            host_id=granted[0].host_id,
            engine=user.engine,
            name=_new_name(session, DatabaseUser, prefix, user.name, taken),
            password_hash=user.password_hash,
            databases=granted,
        )
        session.add(copy)
        if users_into is not None:
            users_into[user.name] = copy.name
    session.flush()
    hosts.bump_generations(session, [c.host_id for c in copies.values()])
    return mapping


def _new_site(
    session: Session,
    principal: Principal,
    account_id: int,
    domain: str,
    php: str | None,
    **settings: Any,
) -> Site:
    data = SiteCreate(account_id=account_id, domain=domain, php=php, **settings)
    return sites.create_site(session, principal, data)


def _remade_databases(
    session: Session, account: Account, dumps: list[dict[str, Any]], taken: set[str]
) -> dict[str, str]:
    """New databases for dumps whose database is gone: the old name when it is free (else
    a numbered one), granted again to the users that held it (``users`` in the backup)
    and still exist, on their host; with none, on a db host that serves the engine."""
    prefix = db_prefix(account.slug)
    mapping: dict[str, str] = {}
    placed: list[int] = []
    for dump in dumps:
        old, engine = dump["name"], dump["engine"]
        check_count_quota(session, account, "databases", Database)
        free = old not in taken and not session.scalar(
            select(Database.id).where(Database.name == old)
        )
        new = old if free else _new_name(session, Database, prefix, old, taken)
        taken.add(new)
        users = session.scalars(
            select(DatabaseUser)
            .where(
                DatabaseUser.account_id == account.id,
                DatabaseUser.engine == engine,
                DatabaseUser.name.in_(dump.get("users", [])),
                DatabaseUser.status != ObjectStatus.deleting,
            )
            .options(selectinload(DatabaseUser.databases))
            .order_by(DatabaseUser.name)
        ).all()
        if users:
            host = session.get_one(Host, users[0].host_id)
        else:
            host = hosts.place(
                session,
                "db",
                Database,
                accept=lambda h, e=engine: databases.serves(h, e),
            )
        row = Database(account_id=account.id, host_id=host.id, engine=engine, name=new)
        session.add(row)
        for user in users:
            if user.host_id == host.id:
                user.databases.append(row)
                mark_pending(user)
        placed.append(host.id)
        mapping[old] = new
    session.flush()
    hosts.bump_generations(session, placed)
    return mapping


def _restore_databases(
    session: Session, account: Account, backup: Backup, copy: bool, users: dict[str, str]
) -> tuple[dict[str, str], list[str]]:
    """Where each dump of ``backup`` goes: ({dump name: target database}, the targets
    whose current contents are replaced and so archived first).  A database that still
    exists is copied (``copy``: a restore as another site) or restored in place; a gone
    one is made again."""
    live = {
        d.name: d
        for d in session.scalars(
            select(Database).where(
                Database.account_id == account.id,
                Database.name.in_([d["name"] for d in backup.databases]),
                Database.status != ObjectStatus.deleting,
            )
        )
    }
    here = [d for d in backup.databases if d["name"] in live]
    gone = [d for d in backup.databases if d["name"] not in live]
    if copy:
        mapping = copy_databases(session, account, [live[d["name"]] for d in here], None, users)
        replaced: list[str] = []
    else:
        mapping = {d["name"]: d["name"] for d in here}
        replaced = sorted(mapping.values())
    mapping |= _remade_databases(session, account, gone, set(mapping.values()))
    return mapping, replaced


def start_restore(
    session: Session, principal: Principal, site: Site, backup_id: int, domain: str | None
) -> Task:
    backup = session.get(Backup, backup_id)
    if backup is None or backup.site_id != site.id:
        raise Invalid("backup_id", f"backup {backup_id} is not a backup of this site")
    _busy(session, site)
    params: dict[str, Any] = {"site_id": site.id, "backup_id": backup.id}
    target = site
    account = account_for_write(session, principal, site.account_id)
    if domain is not None:
        target = _new_site(session, principal, site.account_id, domain, site.php)
        params["target_site_id"] = target.id
    params["user_names"] = {}
    params["database_names"], params["replace"] = _restore_databases(
        session, account, backup, domain is not None, params["user_names"]
    )
    return _start(session, principal, TaskKind.restore, site.account_id, params, site_id=target.id)


def start_restore_backup(
    session: Session, principal: Principal, backup: Backup, domain: str | None
) -> Task:
    """Any backup of the account: one of a live site goes through ``start_restore``; one
    of a deleted site becomes a new site (by default under its old name) with its
    databases restored into the account's databases of the same names, the current
    contents archived first, or into new databases where those are gone."""
    if backup.site_id is not None:
        site = session.get_one(Site, backup.site_id)
        return start_restore(session, principal, site, backup.id, domain)
    account = account_for_write(session, principal, backup.account_id)
    was = backup.site
    https = {"https": "acme", "https_redirect": was.get("https_redirect", True)}
    target = _new_site(
        session,
        principal,
        account.id,
        domain or backup.domain,
        was.get("php"),
        **(https if was.get("https") == "acme" else {}),
    )
    mapping, replaced = _restore_databases(session, account, backup, False, {})
    params = {
        "site_id": None,
        "backup_id": backup.id,
        "target_site_id": target.id,
        "database_names": mapping,
        "replace": replaced,
    }
    return _start(session, principal, TaskKind.restore, account.id, params, site_id=target.id)


def start_clone(session: Session, principal: Principal, site: Site, data: CloneIn) -> Task:
    account = account_for_write(session, principal, site.account_id)
    _check_databases(session, site, data.databases)
    target = _new_site(session, principal, site.account_id, data.domain, site.php)
    stmt = select(Database).where(
        Database.account_id == site.account_id, Database.status == ObjectStatus.active
    )
    if data.databases is not None:
        stmt = stmt.where(Database.name.in_(data.databases))
    sources = list(session.scalars(stmt.order_by(Database.name)))
    users: dict[str, str] = {}
    mapping = copy_databases(session, account, sources, data.database_names, users)
    params = {
        "site_id": site.id,
        "target_site_id": target.id,
        "database_names": mapping,
        "user_names": users,
    }
    return _start(session, principal, TaskKind.clone, site.account_id, params, site_id=target.id)


def start_migrate(session: Session, principal: Principal, site: Site, host_id: int) -> Task:
    principal.require_staff()
    host = hosts.chosen_host(session, host_id, "web")
    if host.id == site.host_id:
        raise Invalid("host_id", "the site is already on this host")
    if site.status != ObjectStatus.active:
        raise Conflict(f"The site is {site.status}; move it once its host carries it.")
    _busy(session, site)
    params = {"site_id": site.id, "host_id": host.id}
    return _start(session, principal, TaskKind.migrate, site.account_id, params, site_id=site.id)


def start_migrate_database(
    session: Session, principal: Principal, database: Database, host_id: int
) -> Task:
    principal.require_staff()
    host = hosts.chosen_host(session, host_id, "db")
    if host.id == database.host_id:
        raise Invalid("host_id", "the database is already on this host")
    if not databases.serves(host, database.engine):
        raise Invalid("host_id", f"host {host.name} does not serve {database.engine}")
    if not host.enabled:
        raise Invalid("host_id", f"host {host.name} is disabled")
    if database.status != ObjectStatus.active:
        raise Conflict(f"The database is {database.status}; move it once its host carries it.")
    for user in session.scalars(
        select(DatabaseUser)
        .where(DatabaseUser.databases.any(Database.id == database.id))
        .options(selectinload(DatabaseUser.databases))
    ):
        others = sorted(d.name for d in user.databases if d.id != database.id)
        if others:
            raise Conflict(
                f"User {user.name} also has {', '.join(others)}; move the whole account "
                "to move them together."
            )
    _refuse_if_under_way(
        session,
        "Task {id} is already moving this database; wait for it to end.",
        ((Task.database_id == database.id) & (Task.kind == TaskKind.migrate_database))
        | _account_move(database.account_id),
    )
    return _start(
        session,
        principal,
        TaskKind.migrate_database,
        database.account_id,
        {"database_id": database.id, "host_id": host.id},
        database_id=database.id,
    )


def start_migrate_account(
    session: Session,
    principal: Principal,
    account: Account,
    web_host_id: int | None,
    db_host_id: int | None,
) -> Task:
    """Staff: every site of the account to one web host and/or every database to one db
    host, one after the other (``panel.tasks.run.migrate.do_migrate_account``)."""
    principal.require_staff()
    if web_host_id is None and db_host_id is None:
        raise Invalid("web_host_id", "name a web host, a db host or both")
    params: dict[str, Any] = {"account_id": account.id}
    if web_host_id is not None:
        params["web_host_id"] = hosts.chosen_host(session, web_host_id, "web", "web_host_id").id
    if db_host_id is not None:
        params["db_host_id"] = hosts.chosen_host(session, db_host_id, "db", "db_host_id").id
    _refuse_if_under_way(
        session,
        "Task {id} is already moving this account's objects; wait for it.",
        (Task.account_id == account.id)
        & Task.kind.in_([TaskKind.migrate_account, TaskKind.migrate, TaskKind.migrate_database]),
    )
    return _start(session, principal, TaskKind.migrate_account, account.id, params)


# ---------------------------------------------------------------- schedules


def next_run(now: dt.datetime, frequency: str, hour: int, weekday: int) -> dt.datetime:
    """The first time after ``now`` at ``hour`` (UTC), on ``weekday`` when weekly."""
    at = now.replace(hour=hour, minute=0, second=0, microsecond=0)
    if frequency == BackupFrequency.weekly:
        at += dt.timedelta(days=(weekday - at.weekday()) % 7)
        step = dt.timedelta(days=7)
    else:
        step = dt.timedelta(days=1)
    while at <= now:
        at += step
    return at


def set_schedule(
    session: Session, principal: Principal, site: Site, data: ScheduleIn
) -> BackupSchedule:
    _need_backup_host(session)
    audit.record(
        session,
        principal,
        "backup-schedule",
        site,
        {"schedule": {"new": data.model_dump(mode="json")}},
    )
    row = session.get(BackupSchedule, site.id)
    if row is None:
        row = BackupSchedule(site_id=site.id, account_id=site.account_id)
        session.add(row)
    row.frequency, row.hour, row.weekday = data.frequency, data.hour, data.weekday
    row.next_run_at = next_run(utcnow(), data.frequency, data.hour, data.weekday)
    session.flush()
    return row


def clear_schedule(session: Session, principal: Principal, site: Site) -> bool:
    """No more scheduled backups (the backups made stay); False when there were none."""
    row = session.get(BackupSchedule, site.id)
    if row is None:
        return False
    session.delete(row)
    audit.record(session, principal, "backup-schedule", site, {"schedule": {"new": None}})
    return True


def run_due_schedules(session: Session, now: dt.datetime | None = None) -> list[int]:
    """A backup task for every schedule whose time came (once, however late)."""
    now = now or utcnow()
    started: list[int] = []
    rows = session.scalars(
        select(BackupSchedule).where(BackupSchedule.next_run_at <= now).with_for_update()
    ).all()
    have_store = bool(rows) and bool(hosts.hosts_with_role(session, "backup"))
    for row in rows:
        row.next_run_at = next_run(now, row.frequency, row.hour, row.weekday)
        site = session.get(Site, row.site_id)
        if site is None or site.status == ObjectStatus.deleting:
            continue
        if not have_store:
            continue
        task = start_backup(session, None, site, scheduled=True)
        row.last_task_id = task.id
        started.append(task.id)
    return started


def lost_tasks(session: Session, older_than: dt.timedelta) -> list[int]:
    """Queued tasks no worker took (a lost message), and running ones whose claim ran out."""
    now = utcnow()
    return list(
        session.scalars(
            select(Task.id).where(
                ((Task.status == "queued") & (Task.created_at < now - older_than))
                | ((Task.status == "running") & (Task.claimed_until < now))
            )
        )
    )
