"""Usage in the web panel: an account's measured storage and traffic (on its dashboard)
and the staff's per-service totals."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import func, select

from panel.accounts.models import Account
from panel.core.db import utcnow
from panel.core.settings import Settings
from panel.usage import service as usage_service
from panel.usage.models import AccountUsage
from panel.web.core import (
    PageRoute,
    Web,
    WebDep,
    render,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


STORAGE_METRICS = ("disk_bytes", "mail_bytes", "db_bytes", "list_archive_bytes")


def storage(web: Web, account: Account) -> dict[str, Any]:
    """Measured storage against the disk quota, and the last 30 days as two small bar
    charts (storage peak and HTTP requests per day), drawn by the server as SVG."""
    measured = web.db.get(AccountUsage, account.id)
    settings: Settings = web.request.app.state.settings
    quota_mb = account.quotas.get("disk_mb", settings.default_quotas.get("disk_mb"))
    end = dt.datetime.combine(utcnow().date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    start = end - dt.timedelta(days=30)
    rows = usage_service.aggregate(
        web.db, [account.id], start, end, "day", [*STORAGE_METRICS, "http_requests"]
    )
    days = [(start + dt.timedelta(days=i)).date().isoformat() for i in range(30)]
    per_day: dict[str, dict[str, int]] = {d: {"storage": 0, "requests": 0} for d in days}
    for row in rows:
        if row["period"] in per_day:
            key = "requests" if row["metric"] == "http_requests" else "storage"
            per_day[row["period"]][key] += int(row["sum"] if key == "requests" else row["peak"])
    charts = {}
    for key in ("storage", "requests"):
        values = [per_day[d][key] for d in days]
        top = max(values) or 1
        charts[key] = {
            "bars": [
                {"x": i * 10, "h": round(60 * v / top, 1), "day": d, "value": v}
                for i, (d, v) in enumerate(zip(days, values, strict=True))
            ],
            "max": top,
            "any": any(values),
        }
    used = measured.disk_bytes if measured else None
    limit = int(quota_mb) * 1024 * 1024 if quota_mb is not None else None
    return {
        "used": used,
        "limit": limit,
        "percent": min(100, round(100 * used / limit)) if used is not None and limit else 0,
        "over_since": measured.over_quota_since if measured else None,
        "measured_at": measured.updated_at if measured else None,
        "charts": charts,
    }


@router.get("/staff/usage")
def usage_totals(web: WebDep) -> Response:
    """Per-service totals per month for the last twelve months: which service carries what
    (the same figures as GET /api/v1/usage/services)."""
    web.require_staff()
    today = utcnow().date()
    first = (today.replace(day=1) - dt.timedelta(days=335)).replace(day=1)
    rows = usage_service.aggregate(
        web.db,
        None,
        dt.datetime.combine(first, dt.time(), dt.UTC),
        dt.datetime.combine(today + dt.timedelta(days=1), dt.time(), dt.UTC),
        "month",
        sorted(usage_service.METRICS),
        by_account=False,
    )
    storage = web.db.execute(
        select(func.count(), func.coalesce(func.sum(AccountUsage.disk_bytes), 0)).where(
            AccountUsage.over_quota_since.is_not(None)
        )
    ).one()
    return render(
        web, "panel/staff/usage.html", rows=rows, over_quota=storage[0], over_bytes=storage[1]
    )
