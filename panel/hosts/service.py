"""Host placement and the generation counter that tells the worker a host is dirty."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, Invalid
from panel.core.objects import apply_changes
from panel.core.outbox import outbox
from panel.hosts.models import Host
from panel.objects.models import PluginObject

if TYPE_CHECKING:
    from panel.hosts.schemas import HostCreate, HostUpdate


def bump_generations(session: Session, host_ids: Iterable[int]) -> None:
    """Mark hosts dirty in the caller's transaction: the row, not the queue, is the truth."""
    ids = sorted(set(host_ids))
    if ids:
        # The worker is nudged after commit (see panel.worker.tasks); the row is the truth.
        outbox(session).dirty_hosts.update(ids)
        session.execute(
            update(Host)
            .where(Host.id.in_(ids))
            .values(desired_generation=Host.desired_generation + 1)
            .execution_options(synchronize_session=False)
        )


def mark_deleting(session: Session, obj: Any) -> None:
    """Deletion goes through the host (which archives data first); the row goes after.
    A site's attached plugin objects (its SFTP logins, cron jobs) go with it."""
    obj.status = ObjectStatus.deleting
    obj.status_reason = None
    if obj.__tablename__ == "sites":
        session.execute(
            update(PluginObject)
            .where(PluginObject.site_id == obj.id)
            .values(status=ObjectStatus.deleting, status_reason=None)
            .execution_options(synchronize_session=False)
        )
    bump_generations(session, [obj.host_id])


def hosts_with_role(session: Session, role: str) -> list[Host]:
    hosts = session.scalars(select(Host).where(Host.enabled.is_(True)).order_by(Host.id)).all()
    return [h for h in hosts if role in h.roles]


def place(
    session: Session,
    role: str,
    model: Any,
    *,
    accept: Any = None,
    where: Any = None,
) -> Host:
    """The enabled host with the role that carries the fewest objects of ``model``
    (``where`` narrows a table of several kinds to one)."""
    candidates = [h for h in hosts_with_role(session, role) if accept is None or accept(h)]
    if not candidates:
        raise Conflict(
            f"No {role} host is available; the provider's staff must add one "
            f"(`konbit host add --role {role}`)."
        )
    counts: dict[int, int] = dict(
        session.execute(
            select(model.host_id, func.count())
            .where(model.host_id.in_([h.id for h in candidates]))
            .where(*([] if where is None else [where]))
            .group_by(model.host_id)
        ).all()
    )
    return min(candidates, key=lambda h: (counts.get(h.id, 0), h.id))


def chosen_host(session: Session, host_id: int, role: str, field: str = "host_id") -> Host:
    host = session.get(Host, host_id)
    if host is None or role not in host.roles:
        raise Invalid(field, f"host {host_id} does not exist or has no '{role}' role")
    return host


def add_host(session: Session, body: HostCreate) -> Host:
    """A new host with its pinned key; dirty from the start (its bootstrap)."""
    if session.scalar(select(Host.id).where(Host.name == body.name)):
        raise Conflict(f"A host named {body.name} already exists.")
    host = Host(
        name=body.name,
        address=body.address,
        ssh_port=body.ssh_port,
        ssh_user=body.ssh_user,
        host_key=body.host_key,
        roles=list(body.roles),
        settings=body.settings.model_dump(mode="json"),
        enabled=body.enabled,
        desired_generation=1,
    )
    session.add(host)
    session.flush()
    # The worker hears of it at commit, not at the next minute's sweep.
    outbox(session).dirty_hosts.add(host.id)
    return host


def update_host(session: Session, host: Host, body: HostUpdate) -> dict[str, Any]:
    """Change a host's address, key, roles, settings or enabled flag; a change marks it dirty.
    ``settings`` replaces the host's settings as a whole (unset keys take their defaults)."""
    values = {
        k: v for k, v in body.model_dump(exclude_unset=True, mode="json").items() if v is not None
    }
    changes = apply_changes(host, values)
    if changes:
        host.desired_generation += 1
    return changes
