"""Recording and pruning the audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from panel.audit.models import AuditEvent
from panel.core.auth import Principal
from panel.core.db import utcnow

SECRET_WORDS = ("password", "secret", "token", "private", "key_pem", "hash")
REDACTED = "[redacted]"
SECRET_CHANGED = "changed"  # noqa: S105 - what the trail says instead of a secret


def redact(changes: dict[str, Any]) -> dict[str, Any]:
    """Replace the values of secret fields; the trail says *that* they changed, never to what."""
    out: dict[str, Any] = {}
    for name, value in changes.items():
        if any(word in name.lower() for word in SECRET_WORDS):
            out[name] = REDACTED
        else:
            out[name] = value
    return out


def record(
    session: Session,
    actor: Principal | None,
    action: str,
    obj: Any,
    changes: dict[str, Any] | None = None,
    *,
    object_type: str | None = None,
    account_id: int | None = None,
) -> AuditEvent:
    """Add one event to the session; it commits with the change it describes."""
    event = AuditEvent(
        actor_user_id=actor.user.id if actor else None,
        actor_email=actor.user.email if actor else None,
        token_id=actor.token.id if actor and actor.token else None,
        client_addr=actor.client_addr if actor else None,
        action=action,
        object_type=object_type or type(obj).__tablename__,
        object_id=getattr(obj, "id", None),
        account_id=account_id if account_id is not None else getattr(obj, "account_id", None),
        changes=redact(changes or {}),
    )
    session.add(event)
    return event


def purge_expired(session: Session, retention_days: int, now: dt.datetime | None = None) -> int:
    """Delete events older than the retention; returns how many went."""
    cutoff = (now or utcnow()) - dt.timedelta(days=retention_days)
    result = session.execute(delete(AuditEvent).where(AuditEvent.time < cutoff))
    return int(getattr(result, "rowcount", 0) or 0)
