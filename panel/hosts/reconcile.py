"""The panel side of a reconcile: read the desired state, run the engine, record the Apply.

One host is reconciled by one worker at a time: a lease on the host row (owner + expiry)
taken with one conditional UPDATE, so it works across processes and machines on the same
database, and a worker killed mid-reconcile frees the host when the lease expires.
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, or_, select, union, update
from sqlalchemy.orm import Session, selectinload

from panel.accounts.models import Account
from panel.core.db import Database, ObjectStatus, utcnow
from panel.core.settings import Settings
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser, database_grants
from panel.hosts.models import Apply, ApplyResult, Host, HostHealth
from panel.hosts.sshkey import ensure_key
from panel.lists.models import ListMember, MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.sites.models import Site, SiteAlias
from provisioners.api import (
    AccountView,
    DatabaseUserView,
    DatabaseView,
    DesiredState,
    HostView,
    ListMemberView,
    MailAliasView,
    MailboxView,
    MailingListView,
    ObjectRef,
    Provisioner,
    SiteView,
    TlsView,
)
from provisioners.engine import HostEngine, Outcome, Plan
from provisioners.transport import Connection, Target, TransportError, load_client_key

log = logging.getLogger("konbit.reconcile")

BACKOFF_MAX = dt.timedelta(hours=1)
# Every kind of object a host carries: (kind as the engine names it) -> model.
MODELS: dict[str, type[Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser]] = {
    "site": Site,
    "mailbox": Mailbox,
    "mail_alias": MailAlias,
    "list": MailingList,
    "database": DbModel,
    "database_user": DatabaseUser,
}


@dataclass(frozen=True)
class Snapshot:
    """The desired state of a host at one moment, and what it was built from."""

    host_id: int
    generation: int
    target: Target
    state: DesiredState
    versions: dict[ObjectRef, int]  # (kind, id) -> version rendered


@dataclass(frozen=True)
class Report:
    apply_id: int
    result: str
    error: str | None
    seconds: float


def snapshot(session: Session, host: Host, settings: Settings | None = None) -> Snapshot:
    """Read everything the host must carry in a handful of queries (never one per object).
    ``settings`` opens members' uploaded TLS keys for the host (without it they stay out)."""
    on_host = {kind: model.host_id == host.id for kind, model in MODELS.items()}
    owners = union(
        *(select(model.account_id).where(on_host[kind]) for kind, model in MODELS.items())
    ).subquery()
    accounts = {
        a.id: AccountView(a.id, a.slug, a.status)
        for a in session.scalars(select(Account).where(Account.id.in_(select(owners))))
    }
    deleting = ObjectStatus.deleting
    sites = session.scalars(
        select(Site).where(on_host["site"]).options(selectinload(Site.aliases))
    ).all()
    tls = _tls_views(session, host.id, settings)
    mailboxes = session.scalars(select(Mailbox).where(on_host["mailbox"])).all()
    aliases = session.scalars(select(MailAlias).where(on_host["mail_alias"])).all()
    lists = session.scalars(select(MailingList).where(on_host["list"])).all()
    rosters = _rosters(session, host.id)
    databases = session.scalars(select(DbModel).where(on_host["database"])).all()
    db_users = session.scalars(
        select(DatabaseUser)
        .where(on_host["database_user"])
        .options(selectinload(DatabaseUser.databases))
    ).all()
    rows: list[tuple[str, Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser]] = [
        *(("site", o) for o in sites),
        *(("mailbox", o) for o in mailboxes),
        *(("mail_alias", o) for o in aliases),
        *(("list", o) for o in lists),
        *(("database", o) for o in databases),
        *(("database_user", o) for o in db_users),
    ]
    def common(obj: Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser) -> Any:
        """The fields every view shares."""
        return {
            "id": obj.id,
            "version": obj.version,
            "account": accounts[obj.account_id],
            "deleting": obj.status == deleting,
        }

    state = DesiredState(
        host=HostView(host.id, host.name, tuple(host.roles), dict(host.settings)),
        accounts=tuple(sorted({accounts[s.account_id] for s in sites}, key=lambda a: a.slug)),
        sites=tuple(
            SiteView(
                **common(s),
                domain=s.domain,
                aliases=tuple(a.name for a in s.aliases),
                document_root=s.document_root,
                php=s.php,
                https=s.https,
                enabled=s.enabled,
                https_redirect=s.https_redirect,
                tls=tls.get(s.id) if s.https != "off" else None,
            )
            for s in sites
        ),
        mailboxes=tuple(
            MailboxView(
                **common(m),
                address=m.address,
                password_hash=m.password_hash,
                quota_mb=m.quota_mb,
                enabled=m.enabled,
            )
            for m in mailboxes
        ),
        mail_aliases=tuple(
            MailAliasView(
                **common(a),
                address=a.address,
                destinations=tuple(a.destinations),
            )
            for a in aliases
        ),
        lists=tuple(
            MailingListView(
                **common(ml),
                address=ml.address,
                owners=tuple(ml.owners),
                policy=ml.policy,
                settings=dict(ml.settings),
                members=rosters.get(ml.id, ()),
            )
            for ml in lists
        ),
        databases=tuple(
            DatabaseView(
                **common(d),
                engine=d.engine,
                name=d.name,
            )
            for d in databases
        ),
        database_users=tuple(
            DatabaseUserView(
                **common(u),
                engine=u.engine,
                name=u.name,
                password_hash=u.password_hash,
                databases=tuple(d.name for d in u.databases if d.status != deleting),
            )
            for u in db_users
        ),
        failed=frozenset((kind, o.id) for kind, o in rows if o.status == ObjectStatus.failed),
    )
    return Snapshot(
        host_id=host.id,
        generation=host.desired_generation,
        target=Target(host.name, host.address, host.ssh_port, host.ssh_user, host.host_key),
        state=state,
        versions={(kind, o.id): o.version for kind, o in rows},
    )


def _tls_views(session: Session, host_id: int, settings: Settings | None) -> dict[int, TlsView]:
    """The certificate each site of the host serves, in one query."""
    from panel.core.secrets import unseal
    from panel.sites.models import SiteCertificate

    out: dict[int, TlsView] = {}
    rows = session.scalars(
        select(SiteCertificate)
        .join(Site, Site.id == SiteCertificate.site_id)
        .where(
            Site.host_id == host_id,
            SiteCertificate.chain_pem.is_not(None),
            SiteCertificate.key_name.is_not(None),
        )
    ).all()
    for row in rows:
        key = None
        if row.key_sealed is not None:
            if settings is None:
                continue
            key = unseal(settings, row.key_sealed)
        out[row.site_id] = TlsView(str(row.chain_pem), str(row.key_name), key)
    return out


def _rosters(session: Session, host_id: int) -> dict[int, tuple[ListMemberView, ...]]:
    """Every roster of the host's lists in one query (never one per list)."""
    rows = session.execute(
        select(ListMember.list_id, ListMember.email, ListMember.role)
        .join(MailingList, MailingList.id == ListMember.list_id)
        .where(MailingList.host_id == host_id)
        .order_by(ListMember.list_id, ListMember.id)
    ).all()
    out: dict[int, list[ListMemberView]] = {}
    for list_id, email, role in rows:
        out.setdefault(list_id, []).append(ListMemberView(email, role))
    return {k: tuple(v) for k, v in out.items()}


def acquire_lease(session: Session, host_id: int, owner: str, seconds: int) -> bool:
    now = utcnow()
    result = session.execute(
        update(Host)
        .where(
            Host.id == host_id,
            or_(Host.lease_until.is_(None), Host.lease_until < now, Host.lease_owner == owner),
        )
        .values(lease_owner=owner, lease_until=now + dt.timedelta(seconds=seconds))
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


def _renew(db: Database, host_id: int, owner: str, settings: Settings) -> bool:
    """Extend our lease between phases; False means another worker took the host over."""
    with db.session() as session:
        ok = acquire_lease(session, host_id, owner, settings.reconcile_lease_seconds)
        session.commit()
        return ok


def release_lease(session: Session, host_id: int, owner: str) -> None:
    session.execute(
        update(Host)
        .where(Host.id == host_id, Host.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def connect(settings: Settings, target: Target) -> Connection:
    return Connection(target, load_client_key(ensure_key(settings.ssh_key_path)))


def plan_host(
    db: Database, settings: Settings, host_id: int, plugins: Sequence[Provisioner]
) -> tuple[Snapshot, Plan]:
    """What a reconcile would do now, without doing it (also shows hand edits: drift)."""
    with db.session() as session:
        snap = snapshot(session, session.get_one(Host, host_id), settings)
    with connect(settings, snap.target) as conn:
        return snap, HostEngine(plugins).plan(conn, snap.state)


def reconcile_host(
    db: Database, settings: Settings, host_id: int, plugins: Sequence[Provisioner], owner: str
) -> Report | None:
    """Reconcile one host if no one else is; None when another worker holds it."""
    with db.session() as session:
        if session.get(Host, host_id) is None:
            return None
        if not acquire_lease(session, host_id, owner, settings.reconcile_lease_seconds):
            session.rollback()
            return None
        # An Apply still "running" under our fresh lease was cut short by a dead worker.
        session.execute(
            update(Apply)
            .where(Apply.host_id == host_id, Apply.result == ApplyResult.running)
            .values(
                result=ApplyResult.failed,
                finished_at=utcnow(),
                error="interrupted: the worker stopped mid-reconcile; a later one resumed",
            )
        )
        session.commit()
    try:
        with db.session() as session:
            snap = snapshot(session, session.get_one(Host, host_id), settings)
            apply = Apply(host_id=host_id, generation=snap.generation, worker=owner)
            session.add(apply)
            session.commit()
            apply_id = apply.id
        unreachable = False
        try:
            with connect(settings, snap.target) as conn:
                # Unique even if apply ids repeat (a restored panel database, a moved host).
                label = f"{apply_id}-{secrets.token_hex(4)}"
                outcome = HostEngine(plugins).apply(
                    conn,
                    snap.state,
                    label,
                    heartbeat=lambda: _renew(db, host_id, owner, settings),
                )
        except TransportError as exc:
            unreachable = True
            outcome = Outcome("failed", None, [str(exc)], error=str(exc), phase="connect")
        with db.session() as session:
            record(
                session,
                snap,
                apply_id,
                outcome,
                unreachable,
                dt.timedelta(seconds=settings.retry_base_seconds),
            )
            session.commit()
        log.info(
            "reconciled",
            extra={
                "host_id": host_id,
                "apply_id": apply_id,
                "result": outcome.result,
                "seconds": outcome.seconds,
            },
        )
        return Report(apply_id, outcome.result, outcome.error, outcome.seconds)
    finally:
        with db.session() as session:
            release_lease(session, host_id, owner)
            session.commit()


def record(
    session: Session,
    snap: Snapshot,
    apply_id: int,
    outcome: Outcome,
    unreachable: bool,
    backoff: dt.timedelta,
) -> None:
    """Write the Apply, the host's generations and health, and every object's status."""
    now = utcnow()
    apply = session.get_one(Apply, apply_id)
    apply.finished_at = now
    apply.result = {"applied": ApplyResult.applied, "noop": ApplyResult.noop}.get(
        outcome.result, ApplyResult.failed
    )
    apply.diff = outcome.plan.diff() if outcome.plan else ""
    apply.log = "\n".join(outcome.log)
    apply.error = outcome.error
    host = session.get_one(Host, snap.host_id)
    if outcome.result in ("applied", "noop"):
        host.applied_generation = max(host.applied_generation, snap.generation)
        host.health, host.health_reason = HostHealth.ok, None
        host.failures, host.retry_at = 0, None
        _settle(session, snap)
        return
    host.health = HostHealth.unreachable if unreachable else HostHealth.failed
    host.health_reason = outcome.error
    if outcome.failed_objects:
        # Blame is known: freeze those objects and try the rest again at once.
        host.retry_at = now
        for (kind, obj_id), reason in outcome.failed_objects.items():
            _fail(session, kind, obj_id, snap.versions.get((kind, obj_id)), reason)
        return
    host.failures += 1
    host.retry_at = now + min(backoff * 2 ** (host.failures - 1), BACKOFF_MAX)
    # Not any one object's fault: they stay pending (and are retried), with the reason.
    for (kind, obj_id), _version in snap.versions.items():
        model = MODELS[kind]
        session.execute(
            update(model)
            .where(
                model.id == obj_id, model.status.in_([ObjectStatus.pending, ObjectStatus.deleting])
            )
            .values(status_reason=f"waiting for {snap.target.name}: {outcome.error}"[:2000])
            .execution_options(synchronize_session=False)
        )


def _fail(session: Session, kind: str, obj_id: int, version: int | None, reason: str) -> None:
    model = MODELS[kind]
    stmt = update(model).where(model.id == obj_id, model.status == ObjectStatus.pending)
    if version is not None:
        stmt = stmt.where(model.version == version)
    session.execute(
        stmt.values(status=ObjectStatus.failed, status_reason=reason[:2000]).execution_options(
            synchronize_session=False
        )
    )
    session.execute(
        update(model)
        .where(model.id == obj_id, model.status == ObjectStatus.deleting)
        .values(status_reason=reason[:2000])
        .execution_options(synchronize_session=False)
    )


def _settle(session: Session, snap: Snapshot) -> None:
    """Objects rendered at their current version are now on the host; deleted ones go.

    Bulk statements (executemany): a first apply of 10,000 sites settles in one batch.
    """
    for kind, model in MODELS.items():
        rows = [{"oid": i, "v": v} for (k, i), v in snap.versions.items() if k == kind]
        if not rows:
            continue
        deleting: dict[int, int] = {
            oid: version
            for oid, version in session.execute(
                select(model.id, model.version).where(
                    model.host_id == snap.host_id, model.status == ObjectStatus.deleting
                )
            )
        }
        gone = [r for r in rows if r["oid"] in deleting]
        if gone:
            # Only those still at the version rendered (one query, not one per object).
            ids = [r["oid"] for r in gone if deleting[r["oid"]] == r["v"]]
            if kind == "site" and ids:
                session.execute(delete(SiteAlias).where(SiteAlias.site_id.in_(ids)))
            if kind == "list" and ids:
                session.execute(delete(ListMember).where(ListMember.list_id.in_(ids)))
            if kind in ("database", "database_user") and ids:
                column = "database_id" if kind == "database" else "user_id"
                session.execute(delete(database_grants).where(database_grants.c[column].in_(ids)))
            if ids:
                session.execute(delete(model).where(model.id.in_(ids)))
        settled = [r for r in rows if r["oid"] not in deleting]
        if settled:
            table = cast(Table, model.__table__)
            session.connection().execute(
                update(table)
                .where(
                    table.c.id == bindparam("oid"),
                    table.c.version == bindparam("v"),
                    table.c.status == ObjectStatus.pending,
                )
                .values(status=ObjectStatus.active, status_reason=None),
                settled,
            )
