"""Plugin objects: placed, validated against their kind's spec, reconciled like any other.

A kind placed on one host (``placement="host"``) wakes that host, one attached to a site
wakes the site's host; a kind served by every
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
from panel.core.errors import Conflict, Forbidden, Invalid, NotFound, ProblemError
from panel.core.objects import apply_changes, mark_pending
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.objects.models import PluginObject
from panel.objects.schemas import ObjectCreate, ObjectUpdate, without_secrets
from panel.sites.models import Site
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
    """The hosts that carry an object: its own, its site's, or every host of its role."""
    if obj.host_id is not None:
        return [obj.host_id]
    if obj.site_id is not None:
        site = session.get(Site, obj.site_id)
        return [site.host_id] if site is not None else []
    kind = installed().kinds[obj.kind]
    return [h.id for h in hosts.hosts_with_role(session, kind.role)]


def _attached_site(
    session: Session, kind: ObjectKind, account_id: int, site_id: int | None
) -> Site:
    """The account's live site an object of a site-attached kind belongs to, or a 422."""
    what = kind.title or kind.name
    if site_id is None:
        raise Invalid("site_id", f"a {what} belongs to one of the account's sites: name it")
    site = session.get(Site, site_id)
    if site is None or site.account_id != account_id or site.status == ObjectStatus.deleting:
        raise Invalid("site_id", f"the account has no site {site_id}")
    if kind.one_per_site:
        taken = session.scalar(
            select(PluginObject.id).where(
                PluginObject.kind == kind.name, PluginObject.site_id == site.id
            )
        )
        if taken is not None:
            raise Conflict(
                f"{site.domain} already has its {what} (id {taken}); change that one instead."
            )
    return site


def follow_site(session: Session, site: Site) -> None:
    """A site moved to another host: the objects attached to it are pending there (they
    live on their site's host).  The hosts to wake are the site's, which the caller bumps;
    a deleted site takes its objects in ``panel.hosts.service.mark_deleting``."""
    for obj in session.scalars(select(PluginObject).where(PluginObject.site_id == site.id)):
        if obj.status != ObjectStatus.deleting:
            mark_pending(obj)


def _check_staff_fields(
    principal: Principal, kind: ObjectKind, old: dict[str, Any], new: dict[str, Any]
) -> None:
    """Fields only the provider's staff may set (a login's shell), checked on the spec as
    the plugin's model sees it (so a default left alone is no change)."""
    if principal.is_staff:
        return
    for name in kind.staff_fields:
        if old.get(name) != new.get(name):
            raise Forbidden(
                f"Only the provider's staff change {name} of a {kind.title or kind.name}."
            )


def create(
    session: Session, principal: Principal, kind: ObjectKind, data: ObjectCreate
) -> PluginObject:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(session, account, kind.name, PluginObject, PluginObject.kind == kind.name)
    spec = checked_spec(kind, data.spec)
    _check_staff_fields(principal, kind, _defaults_of(kind), spec)
    taken = session.scalar(
        select(PluginObject.id).where(
            PluginObject.kind == kind.name, PluginObject.name == data.name
        )
    )
    if taken is not None:
        raise Conflict(f"A {kind.title or kind.name} named {data.name} already exists.")
    host_id: int | None = None
    site_id: int | None = None
    if kind.placement == "site":
        if data.host_id is not None:
            raise Conflict(
                f"A {kind.title or kind.name} lives on its site's host; leave host_id out."
            )
        site_id = _attached_site(session, kind, account.id, data.site_id).id
    elif data.site_id is not None:
        raise Invalid("site_id", f"a {kind.title or kind.name} is not attached to a site")
    elif kind.placement == "host":
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
        kind=kind.name,
        account_id=account.id,
        host_id=host_id,
        site_id=site_id,
        name=data.name,
        spec=spec,
    )
    session.add(obj)
    session.flush()
    hosts.bump_generations(session, host_ids(session, obj))
    return obj


def merged(current: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """A JSON merge patch (RFC 7396) of the spec's top level: keys given replace, null
    removes, others stay, so a change of keys keeps the password hash it does not name."""
    out = dict(current)
    for key, value in patch.items():
        if value is None:
            out.pop(key, None)
        else:
            out[key] = value
    return out


def _defaults_of(kind: ObjectKind) -> dict[str, Any]:
    """The staff fields' defaults, as a spec would hold them."""
    assert kind.spec is not None
    return {
        name: field.get_default(call_default_factory=True)
        for name, field in kind.spec.model_fields.items()
        if name in kind.staff_fields
    }


def update(
    session: Session, principal: Principal, obj: PluginObject, data: ObjectUpdate
) -> dict[str, Any]:
    kind = kind_of(obj.kind)
    spec = checked_spec(kind, merged(obj.spec, data.spec))
    _check_staff_fields(principal, kind, obj.spec, spec)
    changes = apply_changes(obj, {"spec": spec})
    if changes:
        mark_pending(obj)
        hosts.bump_generations(session, host_ids(session, obj))
        # What the audit keeps: a secret's hash changed, never which hash it is now.
        old, new = changes["spec"]["old"], changes["spec"]["new"]
        changes["spec"] = {
            "old": without_secrets(old),
            "new": without_secrets(new),
            **({"secrets_changed": True} if any(
                old.get(k) != new.get(k) for k in {*old, *new} if k.endswith("_hash")
            ) else {}),
        }  # fmt: skip
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
