"""``/api/v1/usage``: what each account used, per period, in JSON or CSV."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Header, Query
from fastapi.responses import JSONResponse, Response
from sqlalchemy import select

from panel.accounts.models import Account
from panel.core.auth import Principal
from panel.core.db import utcnow
from panel.core.errors import Forbidden, Invalid
from panel.core.http import READ_ERRORS, PrincipalDep, SessionDep, SettingsDep
from panel.usage import service
from panel.usage.models import AccountUsage, HostUsage

router = APIRouter(prefix="/usage", tags=["usage"])

Granularity = Literal["day", "month"]
COLUMNS = (
    "account_id",
    "period",
    "service",
    "metric",
    "kind",
    "object_type",
    "object_id",
    "samples",
    "sum",
    "peak",
    "average",
)
MAX_SPAN = dt.timedelta(days=3 * 366)


def _window(start: dt.date | None, end: dt.date | None) -> tuple[dt.datetime, dt.datetime]:
    """``from`` inclusive, ``to`` exclusive, as UTC days; the last 30 days by default."""
    to = end or (utcnow().date() + dt.timedelta(days=1))
    since = start or (to - dt.timedelta(days=30))
    if since >= to:
        raise Invalid("from", "must be before 'to'")
    if to - since > MAX_SPAN:
        raise Invalid("to", "a window spans at most three years; ask for several")
    return _midnight(since), _midnight(to)


def _midnight(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def _metrics(metric: list[str] | None) -> list[str]:
    wanted = [m for value in metric or [] for m in value.split(",") if m]
    unknown = [m for m in wanted if m not in service.METRICS]
    if unknown:
        raise Invalid("metric", f"unknown metric {unknown[0]!r}; one of {sorted(service.METRICS)}")
    return wanted or sorted(service.METRICS)


def _accounts(principal: Principal, account_id: int | None) -> list[int] | None:
    """Billing and staff read every account; a member only its own: another account's id
    filters to nothing, as on every other list."""
    if principal.is_billing:
        return None if account_id is None else [account_id]
    visible = principal.visible_accounts() or []
    if account_id is None:
        return visible
    return [account_id] if account_id in visible else []


def _respond(rows: list[dict[str, Any]], accept: str | None, columns: tuple[str, ...]) -> Any:
    if accept and "text/csv" in accept:
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: "" if row.get(k) is None else row.get(k) for k in columns})
        return Response(buf.getvalue(), media_type="text/csv; charset=utf-8")
    return JSONResponse({"items": rows})


@router.get(
    "",
    responses={
        **READ_ERRORS,
        200: {"content": {"application/json": {}, "text/csv": {}}},
    },
)
def usage(
    session: SessionDep,
    principal: PrincipalDep,
    account_id: Annotated[int | None, Query(ge=1)] = None,
    start: Annotated[dt.date | None, Query(alias="from")] = None,
    end: Annotated[dt.date | None, Query(alias="to")] = None,
    granularity: Granularity = "day",
    metric: Annotated[list[str] | None, Query()] = None,
    detail: bool = False,
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Usage per account, period and metric (``Accept: text/csv`` for CSV).

    Levels (disk, mail, databases, list archives) give ``peak`` and ``average`` of the
    account's total over the collections of the period; counters (HTTP requests and bytes)
    give ``sum``. ``detail=true`` splits rows per object. ``from`` is inclusive, ``to``
    exclusive, both UTC days."""
    since, until = _window(start, end)
    accounts = _accounts(principal, account_id)
    if accounts == []:
        return _respond([], accept, COLUMNS)
    rows = service.aggregate(
        session, accounts, since, until, granularity, _metrics(metric), detail=detail
    )
    return _respond(rows, accept, COLUMNS)


@router.get("/services", responses={**READ_ERRORS, 200: {"content": {"text/csv": {}}}})
def services(
    session: SessionDep,
    principal: PrincipalDep,
    start: Annotated[dt.date | None, Query(alias="from")] = None,
    end: Annotated[dt.date | None, Query(alias="to")] = None,
    granularity: Granularity = "month",
    accept: Annotated[str | None, Header()] = None,
) -> Any:
    """Staff and billing: the provider's totals per service (web, mail, lists, databases)
    and period: which service carries what."""
    if not principal.is_billing:
        raise Forbidden("Only staff or a billing token see the provider's totals.")
    since, until = _window(start, end)
    rows = service.aggregate(
        session, None, since, until, granularity, sorted(service.METRICS), by_account=False
    )
    return _respond(rows, accept, tuple(c for c in COLUMNS if c not in ("account_id",)))


@router.get("/storage", responses=READ_ERRORS)
def storage(
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    account_id: Annotated[int | None, Query(ge=1)] = None,
    over_quota: bool = False,
) -> Any:
    """Each account's storage against its disk quota, as of the last collection, and since
    when it is over (``over_quota=true``: only those)."""
    accounts = _accounts(principal, account_id)
    stmt = select(Account, AccountUsage).join(
        AccountUsage, AccountUsage.account_id == Account.id, isouter=True
    )
    if accounts is not None:
        stmt = stmt.where(Account.id.in_(accounts))
    if over_quota:
        stmt = stmt.where(AccountUsage.over_quota_since.is_not(None))
    items = []
    for account, usage in session.execute(stmt.order_by(Account.id)):
        quota = account.quotas.get("disk_mb", settings.default_quotas.get("disk_mb"))
        items.append(
            {
                "account_id": account.id,
                "disk_bytes": usage.disk_bytes if usage else None,
                "disk_quota_bytes": int(quota) * service.MIB if quota is not None else None,
                "over_quota_since": usage.over_quota_since.isoformat()
                if usage and usage.over_quota_since
                else None,
                "suspended_for_quota_at": usage.suspended_at.isoformat()
                if usage and usage.suspended_at
                else None,
                "measured_at": usage.updated_at.isoformat() if usage else None,
            }
        )
    return {"items": items}


@router.get("/hosts", responses=READ_ERRORS)
def collections(session: SessionDep, principal: PrincipalDep) -> Any:
    """Staff: when each host's usage was last collected, how long it took, its last error."""
    principal.require_staff()
    rows = session.scalars(select(HostUsage).order_by(HostUsage.host_id)).all()
    return {
        "items": [
            {
                "host_id": r.host_id,
                "collected_at": r.collected_at.isoformat() if r.collected_at else None,
                "seconds": r.seconds,
                "error": r.error,
                "failures": r.failures,
                "retry_at": r.retry_at.isoformat() if r.retry_at else None,
            }
            for r in rows
        ]
    }
