"""The staff's audit log, filtered by account, action, object type, actor and day."""

from __future__ import annotations

import datetime as dt

from fastapi import APIRouter, Response
from sqlalchemy import select

from panel.accounts.models import Account
from panel.audit.models import AuditEvent
from panel.web.core import (
    PageRoute,
    WebDep,
    page_of,
    render,
)

router = APIRouter(prefix="/staff", route_class=PageRoute, include_in_schema=False)


@router.get("/audit")
def audit_log(web: WebDep) -> Response:
    web.require_staff()
    q = web.request.query_params
    stmt = select(AuditEvent)
    filters = {
        k: q.get(k, "").strip() for k in ("account", "action", "object_type", "actor", "since")
    }
    if filters["account"]:
        acc = web.db.scalar(select(Account.id).where(Account.slug == filters["account"]))
        stmt = stmt.where(AuditEvent.account_id == (acc or -1))
    if filters["action"]:
        stmt = stmt.where(AuditEvent.action == filters["action"])
    if filters["object_type"]:
        stmt = stmt.where(AuditEvent.object_type == filters["object_type"])
    if filters["actor"]:
        stmt = stmt.where(AuditEvent.actor_email == filters["actor"].lower())
    if filters["since"]:
        try:
            day = dt.date.fromisoformat(filters["since"])
            stmt = stmt.where(AuditEvent.time >= dt.datetime.combine(day, dt.time(), dt.UTC))
        except ValueError:
            filters["since"] = ""
    page = page_of(web, stmt, AuditEvent.id, newest_first=True)
    slugs = {row[0]: row[1] for row in web.db.execute(select(Account.id, Account.slug))}
    return render(
        web, "panel/staff/audit.html", events=page.rows, page=page, filters=filters, slugs=slugs
    )
