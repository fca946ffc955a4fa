"""Host placement and the generation counter that tells the worker a host is dirty."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from panel.core.errors import Conflict, Invalid
from panel.hosts.models import Host, HostRole


def bump_generations(session: Session, host_ids: Iterable[int]) -> None:
    """Mark hosts dirty in the caller's transaction: the row, not the queue, is the truth."""
    ids = sorted(set(host_ids))
    if ids:
        # The worker is nudged after commit (see panel.worker.tasks); the row is the truth.
        session.info.setdefault("dirty_hosts", set()).update(ids)
        session.execute(
            update(Host)
            .where(Host.id.in_(ids))
            .values(desired_generation=Host.desired_generation + 1)
            .execution_options(synchronize_session=False)
        )


def hosts_with_role(session: Session, role: HostRole) -> list[Host]:
    hosts = session.scalars(select(Host).where(Host.enabled.is_(True)).order_by(Host.id)).all()
    return [h for h in hosts if role.value in h.roles]


def place(
    session: Session,
    role: HostRole,
    model: Any,
    *,
    accept: Any = None,
) -> Host:
    """The enabled host with the role that carries the fewest objects of ``model``."""
    candidates = [h for h in hosts_with_role(session, role) if accept is None or accept(h)]
    if not candidates:
        raise Conflict(
            f"No {role.value} host is available; the provider's staff must add one "
            f"(`konbit host add --role {role.value}`)."
        )
    counts: dict[int, int] = dict(
        session.execute(
            select(model.host_id, func.count())
            .where(model.host_id.in_([h.id for h in candidates]))
            .group_by(model.host_id)
        ).all()
    )
    return min(candidates, key=lambda h: (counts.get(h.id, 0), h.id))


def chosen_host(session: Session, host_id: int, role: HostRole, field: str = "host_id") -> Host:
    host = session.get(Host, host_id)
    if host is None or role.value not in host.roles:
        raise Invalid(field, f"host {host_id} does not exist or has no '{role.value}' role")
    return host
