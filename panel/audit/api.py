"""``/api/v1/audit-events``."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Query
from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.audit.schemas import AuditEventOut
from panel.core.db import utcnow
from panel.core.errors import NotFound
from panel.core.http import READ_ERRORS, ListDep, PrincipalDep, SessionDep, SettingsDep
from panel.core.pagination import Page, paginate

router = APIRouter(prefix="/audit-events", tags=["audit-events"])


@router.get("", response_model=Page[AuditEventOut], responses=READ_ERRORS)
def list_events(
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    params: ListDep,
    object_type: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    action: Annotated[str | None, Query(pattern=r"^[a-z_]{1,32}$")] = None,
    actor_user_id: Annotated[int | None, Query(ge=1)] = None,
) -> Any:
    """Audit events of the accounts you can see (staff: all), within the retention."""
    cutoff = utcnow() - dt.timedelta(days=settings.audit_retention_days)
    stmt = principal.fence(select(AuditEvent), AuditEvent.account_id).where(
        AuditEvent.time >= cutoff
    )
    if params.account_id is not None:
        stmt = stmt.where(AuditEvent.account_id == params.account_id)
    if object_type:
        stmt = stmt.where(AuditEvent.object_type == object_type)
    if action:
        stmt = stmt.where(AuditEvent.action == action)
    if actor_user_id:
        stmt = stmt.where(AuditEvent.actor_user_id == actor_user_id)
    rows, cursor = paginate(session, stmt, AuditEvent.id, params.cursor, params.limit)
    return Page(items=[AuditEventOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.get("/{event_id}", response_model=AuditEventOut, responses=READ_ERRORS)
def get_event(event_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """One audit event."""
    event = session.get(AuditEvent, event_id)
    if event is None:
        raise NotFound("audit event")
    visible = principal.visible_accounts()
    if visible is not None and event.account_id not in visible:
        raise NotFound("audit event")
    return AuditEventOut.model_validate(event)
