"""Plugin objects: placed, validated against their kind's spec, reconciled like any other.

A kind placed on one host (``placement="host"``) wakes that host; a kind served by every
host of its role (``placement="role"``, a DNS zone) wakes all of them, and its status
settles once none of them lags (``settle_role_objects``).
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write, check_count_quota
from panel.core.auth import Principal
from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, NotFound, ProblemError
from panel.core.objects import apply_changes, mark_pending
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.objects.models import PluginObject
from panel.objects.schemas import ObjectCreate, ObjectUpdate
from provisioners.api import ObjectKind
from provisioners.registry import installed


class InvalidSpec(ProblemError):
    status, kind, title = 422, "validation-error", "Invalid input"


def kind_of(name: str) -> ObjectKind:
    """A kind the panel stores for an installed plugin; 404 for any other name."""
    kind = installed().kinds.get(name)
    if kind is None or kind.spec is None:
        raise NotFound("kind of object")
    return kind


def checked_spec(kind: ObjectKind, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the plugin's model sees it, or a 422 naming each field at fault."""
    assert kind.spec is not None
    try:
        model: BaseModel = kind.spec.model_validate(spec)
    except ValidationError as exc:
        errors = [
            {
                "field": ".".join(["spec", *(str(p) for p in e["loc"] if "[" not in str(p))]),
                "reason": str(e["msg"]).removeprefix("Value error, "),
            }
            for e in exc.errors()
        ]
        raise InvalidSpec(
            "; ".join(f"{e['field']}: {e['reason']}" for e in errors), errors=errors
        ) from None
    return model.model_dump(mode="json")


def host_ids(session: Session, obj: PluginObject) -> list[int]:
    """The hosts that carry an object: its own, or every host of its kind's role."""
    if obj.host_id is not None:
        return [obj.host_id]
    kind = installed().kinds[obj.kind]
    return [h.id for h in hosts.hosts_with_role(session, kind.role)]


def create(
    session: Session, principal: Principal, kind: ObjectKind, data: ObjectCreate
) -> PluginObject:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(
        session, account, kind.name, PluginObject, PluginObject.kind == kind.name
    )
    spec = checked_spec(kind, data.spec)
    taken = session.scalar(
        select(PluginObject.id).where(
            PluginObject.kind == kind.name, PluginObject.name == data.name
        )
    )
    if taken is not None:
        raise Conflict(f"A {kind.title or kind.name} named {data.name} already exists.")
    host_id: int | None = None
    if kind.placement == "host":
        if data.host_id is not None:
            host_id = hosts.chosen_host(session, data.host_id, kind.role).id
        else:
            host_id = hosts.place(
                session, kind.role, PluginObject, where=PluginObject.kind == kind.name
            ).id
    elif data.host_id is not None:
        raise Conflict(
            f"A {kind.title or kind.name} is served by every {kind.role} host; leave host_id out."
        )
    obj = PluginObject(
        kind=kind.name, account_id=account.id, host_id=host_id, name=data.name, spec=spec
    )
    session.add(obj)
    session.flush()
    hosts.bump_generations(session, host_ids(session, obj))
    return obj


def update(session: Session, obj: PluginObject, data: ObjectUpdate) -> dict[str, Any]:
    spec = checked_spec(kind_of(obj.kind), data.spec)
    changes = apply_changes(obj, {"spec": spec})
    if changes:
        mark_pending(obj)
        hosts.bump_generations(session, host_ids(session, obj))
    return changes


def mark_deleting(session: Session, obj: PluginObject) -> None:
    obj.status = ObjectStatus.deleting
    obj.status_reason = None
    hosts.bump_generations(session, host_ids(session, obj))


# Two hosts of a role that record their applies at once must not each see the other
# lagging (then neither settles): on PostgreSQL the check waits for the other's commit.
_SETTLE_LOCK = 0x6B6F6E626974_01  # "konbit", 1


def lagging(session: Session, role: str, but: int) -> bool:
    """Whether a host of the role other than ``but`` has not applied its latest state
    (called in the transaction that records ``but``'s apply, after its own update)."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(select(func.pg_advisory_xact_lock(_SETTLE_LOCK)))
    return any(
        h.applied_generation < h.desired_generation
        for h in hosts.hosts_with_role(session, role)
        if h.id != but
    )


def hosts_serving(session: Session, kind: ObjectKind) -> list[Host]:
    return hosts.hosts_with_role(session, kind.role)
