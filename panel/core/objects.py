"""Helpers every domain service uses on its member-visible objects."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import Response
from pydantic import BaseModel
from sqlalchemy.orm import Session

from panel.accounts.models import Role
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import Conflict, NotFound
from panel.core.http import etag_of
from panel.core.idempotency import Idempotency

M = TypeVar("M")


def get_visible(
    session: Session,
    principal: Principal,
    model: type[M],
    obj_id: int,
    options: Sequence[Any] = (),
) -> M:
    """The object if the caller may see its account; 404 otherwise, never its data."""
    obj = session.get(model, obj_id, options=options)
    if obj is None:
        raise NotFound()
    principal.require(obj.account_id, Role.viewer)  # type: ignore[attr-defined]
    return obj


def get_writable(
    session: Session,
    principal: Principal,
    model: type[M],
    obj_id: int,
    options: Sequence[Any] = (),
) -> M:
    obj = get_visible(session, principal, model, obj_id, options)
    principal.require(obj.account_id, Role.manager)  # type: ignore[attr-defined]
    if getattr(obj, "status", None) == ObjectStatus.deleting:
        raise Conflict("This object is being deleted; it can no longer change.")
    return obj


def apply_changes(obj: Any, values: dict[str, Any]) -> dict[str, Any]:
    """Set the given attributes; return ``{field: {old, new}}`` for those that changed."""
    changes: dict[str, Any] = {}
    for name, new in values.items():
        old = getattr(obj, name)
        if old != new:
            setattr(obj, name, new)
            changes[name] = {"old": old, "new": new}
    return changes


def mark_pending(obj: Any) -> None:
    """A change the host does not carry yet."""
    obj.status = ObjectStatus.pending
    obj.status_reason = None
    obj.updated_at = utcnow()  # also bumps the version (ETag) when only a relation changed


def finish_create(
    session: Session,
    principal: Principal,
    idem: Idempotency,
    body: BaseModel,
    obj: Any,
    out: BaseModel,
    response: Response,
    fields: dict[str, Any],
) -> BaseModel:
    """Audit, remember for Idempotency-Key, commit, ETag: the tail of every create."""
    audit.record(
        session, principal, "create", obj, {k: {"new": _jsonable(v)} for k, v in fields.items()}
    )
    idem.remember(session, principal, body, out)
    session.commit()
    response.headers["ETag"] = etag_of(obj)
    return out


def finish_update(
    session: Session, principal: Principal, obj: Any, changes: dict[str, Any], response: Response
) -> None:
    """Audit (when anything changed), commit, fresh ETag: the tail of every update."""
    if changes:
        audit.record(session, principal, "update", obj, _jsonable(changes))
    session.commit()
    response.headers["ETag"] = etag_of(obj)


def finish_delete(session: Session, principal: Principal, obj: Any, label: str) -> None:
    audit.record(session, principal, "delete", obj, {"name": label})
    session.commit()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)
