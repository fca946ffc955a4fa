"""Databases and their users: names namespaced by account, grants recorded exactly."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.accounts.models import Account
from panel.accounts.service import account_for_write, check_count_quota
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, Invalid
from panel.core.objects import mark_pending
from panel.core.validation import check_db_identifier
from panel.databases.models import Database, DatabaseUser, Engine
from panel.databases.schemas import DatabaseCreate, DatabaseUserCreate, DatabaseUserUpdate
from panel.databases.secrets import verifier_for
from panel.hosts import service as hosts
from panel.hosts.models import Host


def _namespaced(account: Account, name: str, kind: str, field: str) -> str:
    try:
        return check_db_identifier(name, account.slug, kind)
    except ValueError as exc:
        raise Invalid(field, str(exc)) from None


def serves(host: Host, engine: str) -> bool:
    """Whether a db host runs this engine (host setting ``engines``, both by default)."""
    return engine in host.settings.get("engines", [e.value for e in Engine])


def _serves(engine: str) -> Any:
    return lambda host: serves(host, engine)


def create_database(session: Session, principal: Principal, data: DatabaseCreate) -> Database:
    account = account_for_write(session, principal, data.account_id)
    name = _namespaced(account, data.name, "database", "name")
    check_count_quota(session, account, "databases", Database)
    if session.scalar(
        select(Database.id).where(Database.name == name, Database.engine == data.engine)
    ):
        raise Conflict(f"A {data.engine} database named {name} already exists.")
    host = hosts.place(session, "db", Database, accept=_serves(data.engine))
    db = Database(account_id=account.id, host_id=host.id, engine=data.engine, name=name)
    session.add(db)
    session.flush()
    hosts.bump_generations(session, [host.id])
    return db


def _grants(
    session: Session, account_id: int, engine: str | None, names: list[str], host_id: int | None
) -> list[Database]:
    """The account's databases by name, all on one engine and host (a user lives on one)."""
    if not names:
        return []
    found = {
        d.name: d
        for d in session.scalars(
            select(Database).where(
                Database.account_id == account_id,
                Database.name.in_(names),
                Database.status != ObjectStatus.deleting,
            )
        )
    }
    missing = [n for n in names if n not in found]
    if missing:
        raise Invalid("databases", f"not databases of this account: {', '.join(missing)}")
    dbs = [found[n] for n in names]
    engines = {d.engine for d in dbs} | ({engine} if engine else set())
    host_ids = {d.host_id for d in dbs} | ({host_id} if host_id else set())
    if len(engines) > 1 or len(host_ids) > 1:
        raise Invalid("databases", "a user's databases must share one engine and one host")
    return dbs


def create_user(session: Session, principal: Principal, data: DatabaseUserCreate) -> DatabaseUser:
    account = account_for_write(session, principal, data.account_id)
    name = _namespaced(account, data.name, "user", "name")
    dbs = _grants(session, account.id, data.engine, list(data.databases), None)
    engine = dbs[0].engine if dbs else (data.engine or Engine.mariadb)
    if engine == Engine.postgresql and name.startswith("pg_"):
        # PostgreSQL refuses such role names: say so now rather than fail on the host.
        raise Invalid("name", "PostgreSQL reserves role names starting with 'pg_'")
    if session.scalar(
        select(DatabaseUser.id).where(DatabaseUser.name == name, DatabaseUser.engine == engine)
    ):
        raise Conflict(f"A {engine} user named {name} already exists.")
    host_id = (
        dbs[0].host_id
        if dbs
        else hosts.place(session, "db", DatabaseUser, accept=_serves(engine)).id
    )
    user = DatabaseUser(
        account_id=account.id,
        host_id=host_id,
        engine=engine,
        name=name,
        password_hash=verifier_for(engine, data.password),
        databases=dbs,
    )
    session.add(user)
    session.flush()
    hosts.bump_generations(session, [host_id])
    return user


def update_user(session: Session, user: DatabaseUser, data: DatabaseUserUpdate) -> dict[str, Any]:
    changes: dict[str, Any] = {}
    if data.password is not None:
        user.password_hash = verifier_for(user.engine, data.password)
        changes["password"] = audit.SECRET_CHANGED
    if data.databases is not None:
        old = [d.name for d in user.databases]
        dbs = _grants(session, user.account_id, user.engine, list(data.databases), user.host_id)
        if sorted(old) != sorted(d.name for d in dbs):
            user.databases = dbs
            changes["databases"] = {"old": old, "new": [d.name for d in dbs]}
    if changes:
        mark_pending(user)
        hosts.bump_generations(session, [user.host_id])
    return changes
