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
from typing import cast

from sqlalchemy import Table, bindparam, delete, or_, select, update
from sqlalchemy.orm import Session

from panel.core.db import Database, ObjectStatus, utcnow
from panel.core.settings import Settings
from panel.databases.models import database_grants
from panel.hosts.models import Apply, ApplyResult, Host, HostHealth
from panel.hosts.sshkey import ensure_key
from panel.hosts.state import MODELS as MODELS
from panel.hosts.state import Snapshot as Snapshot
from panel.hosts.state import snapshot as snapshot
from panel.lists.models import ListMember
from panel.objects.models import PluginObject
from panel.objects.service import lagging
from panel.sites.models import SiteAlias
from provisioners.api import Provisioner
from provisioners.engine import HostEngine, Outcome, Plan
from provisioners.registry import installed
from provisioners.transport import Connection, Target, TransportError, load_client_key

log = logging.getLogger("konbit.reconcile")

BACKOFF_MAX = dt.timedelta(hours=1)


@dataclass(frozen=True)
class Report:
    apply_id: int
    result: str
    error: str | None
    seconds: float


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
    # A zone's domain is active from its creation: what failed is the zone's content.
    failing = [ObjectStatus.pending] + ([ObjectStatus.active] if kind == "zone" else [])
    stmt = update(model).where(model.id == obj_id, model.status.in_(failing))
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
    kinds = installed().kinds
    for kind, model in MODELS.items():
        rows = [{"oid": i, "v": v} for (k, i), v in snap.versions.items() if k == kind]
        if not rows:
            continue
        declared = kinds.get(kind)
        role_wide = declared is not None and declared.placement == "role"
        if role_wide and declared and lagging(session, declared.role, snap.host_id):
            continue  # served by every host of the role: settled by the last to apply
        here = (
            model.id.in_([r["oid"] for r in rows])
            if model is PluginObject or not hasattr(model, "host_id")  # plugin objects, zones
            else model.host_id == snap.host_id
        )
        deleting: dict[int, int] = {
            oid: version
            for oid, version in session.execute(
                select(model.id, model.version).where(here, model.status == ObjectStatus.deleting)
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
