"""Usage: collect it from the hosts, keep it as samples, aggregate it for billing.

Semantics (what an invoice can be reproduced from):

* a **level** metric (``disk_bytes``, ``site_bytes``, ``mail_bytes``, ``mail_messages``,
  ``db_bytes``, ``list_archive_bytes``) is what an object held at a collection; per period
  the API gives its **peak** and its **average** over the collections of that period,
  summed over the account's objects collection by collection (so "peak" is the account's
  peak, not a sum of peaks);
* a **counter** metric (``http_requests``, ``http_bytes``) is what happened between two
  collections; per period the API gives its **sum**.

Periods are UTC days or months; a sample belongs to the period its collection time falls in.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Date, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from panel.accounts.models import Account, AccountStatus
from panel.accounts.service import hosts_of
from panel.audit import service as audit
from panel.core.db import Database, utcnow
from panel.core.settings import Settings
from panel.hosts.models import Host
from panel.hosts.reconcile import connect, snapshot
from panel.hosts.service import bump_generations
from panel.usage.models import AccountUsage, HostUsage, UsageDaily, UsageRollup, UsageSample
from provisioners.api import DesiredState, ObjectRef, Provisioner, Sample
from provisioners.registry import installed
from provisioners.transport import TransportError
from provisioners.usage import CollectionFailed, collect

log = logging.getLogger("konbit.usage")

# Built from the installed plugins' declarations at start-up:
# metric -> (service it belongs to, "level" or "counter").
METRICS: dict[str, tuple[str, str]] = {
    m.name: (m.service, "counter" if m.counter else "level") for m in installed().metrics.values()
}
# What counts against an account's disk quota: an account's own home (its sites' files
# are inside it), its mail, its databases and its lists' archives.
STORAGE: dict[tuple[str, str], bool] = {
    (m.storage_of, m.name): True for m in installed().metrics.values() if m.storage_of
}
RETRY_MAX = dt.timedelta(hours=1)
MIB = 1024 * 1024


@dataclass(frozen=True)
class CollectReport:
    host_id: int
    ok: bool
    samples: int
    seconds: float
    error: str | None = None


def owners(state: DesiredState) -> dict[ObjectRef, int]:
    """Which account each object of the state belongs to."""
    out: dict[ObjectRef, int] = {("account", a.id): a.id for a in state.accounts}
    views: Iterable[tuple[str, Any]] = (
        *(("site", v) for v in state.sites),
        *(("mailbox", v) for v in state.mailboxes),
        *(("list", v) for v in state.lists),
        *(("database", v) for v in state.databases),
        *((kind, v) for kind, items in state.objects.items() for v in items),
    )
    for kind, view in views:
        out[(kind, view.id)] = view.account.id
        out[("account", view.account.id)] = view.account.id
    return out


def collect_host(
    db: Database,
    settings: Settings,
    host_id: int,
    plugins: Sequence[Provisioner],
    at: dt.datetime | None = None,
) -> CollectReport:
    """One exec on the host; samples, cursors and quota state in one transaction, so a
    collection is stored whole or not at all (and then read again from the same offsets)."""
    with db.session() as session:
        host = session.get_one(Host, host_id)
        snap = snapshot(session, host)
        state_row = session.get(HostUsage, host_id)
        cursors = dict(state_row.cursors) if state_row else {}
    try:
        with connect(settings, snap.target) as conn:
            result = collect(conn, snap.state, plugins, cursors)
    except (TransportError, CollectionFailed) as exc:
        with db.session() as session:
            row = session.get(HostUsage, host_id) or HostUsage(host_id=host_id, cursors={})
            session.add(row)
            row.failures = (row.failures or 0) + 1
            row.error = str(exc)[:2000]
            delay = dt.timedelta(seconds=settings.retry_base_seconds) * 2 ** (row.failures - 1)
            row.retry_at = utcnow() + min(delay, RETRY_MAX)
            session.commit()
        log.warning("usage collection failed", extra={"host_id": host_id, "error": str(exc)})
        return CollectReport(host_id, False, 0, 0.0, str(exc))
    # One time for every host of a collection round, so an account's objects on several
    # hosts add up into one figure per collection.
    now = at or utcnow()
    with db.session() as session:
        stored = store(session, snap.host_id, snap.state, result.samples, now)
        row = session.get(HostUsage, host_id) or HostUsage(host_id=host_id)
        session.add(row)
        row.cursors = {**cursors, **result.cursors}
        row.collected_at, row.seconds = now, result.seconds
        row.error, row.failures, row.retry_at = None, 0, None
        check_quotas(session, settings, snap.host_id, snap.state, result.samples, now)
        session.commit()
    log.info(
        "usage collected",
        extra={"host_id": host_id, "samples": stored, "seconds": round(result.seconds, 3)},
    )
    return CollectReport(host_id, True, stored, result.seconds)


def store(
    session: Session,
    host_id: int,
    state: DesiredState,
    samples: Sequence[Sample],
    now: dt.datetime,
) -> int:
    """Samples of objects the panel still knows, in one executemany."""
    account_of = owners(state)
    rows = [
        {
            "account_id": account_of[s.object],
            "object_type": s.object[0],
            "object_id": s.object[1],
            "metric": s.metric,
            "value": s.value,
            "time": now,
        }
        for s in samples
        if s.object in account_of and s.metric in METRICS
    ]
    if rows:
        session.execute(insert(UsageSample), rows)
    return len(rows)


def check_quotas(
    session: Session,
    settings: Settings,
    host_id: int,
    state: DesiredState,
    samples: Sequence[Sample],
    now: dt.datetime,
) -> None:
    """This host's share of each account's storage; flag (and, when the provider enables
    it, suspend after a grace period) accounts over their disk quota."""
    account_of = owners(state)
    part: dict[int, int] = defaultdict(int)
    for s in samples:
        if STORAGE.get((s.object[0], s.metric)) and s.object in account_of:
            part[account_of[s.object]] += s.value
    accounts = {a.id for a in state.accounts} | set(account_of.values())
    if not accounts:
        return
    existing = {
        u.account_id: u
        for u in session.scalars(select(AccountUsage).where(AccountUsage.account_id.in_(accounts)))
    }
    rows = {a.id: a for a in session.scalars(select(Account).where(Account.id.in_(accounts)))}
    grace = settings.quota_suspend_after_hours
    for account_id in accounts:
        usage = existing.get(account_id)
        if usage is None:
            usage = AccountUsage(account_id=account_id, parts={}, disk_bytes=0)
            session.add(usage)
        usage.parts = {**(usage.parts or {}), str(host_id): part.get(account_id, 0)}
        usage.disk_bytes = sum(int(v) for v in usage.parts.values())
        usage.updated_at = now
        account = rows[account_id]
        limit = account.quotas.get("disk_mb", settings.default_quotas.get("disk_mb"))
        over = limit is not None and usage.disk_bytes > int(limit) * MIB
        if over and usage.over_quota_since is None:
            usage.over_quota_since = now
            audit.record(session, None, "over_quota", account, {"disk_bytes": usage.disk_bytes})
        elif not over and usage.over_quota_since is not None:
            usage.over_quota_since = None
            audit.record(session, None, "under_quota", account, {"disk_bytes": usage.disk_bytes})
            if usage.suspended_at is not None and account.status == AccountStatus.suspended:
                _set_status(session, account, AccountStatus.active, "quota_unsuspend")
            usage.suspended_at = None
        if (
            over
            and grace is not None
            and usage.over_quota_since is not None
            and usage.suspended_at is None
            and account.status == AccountStatus.active
            and now - usage.over_quota_since >= dt.timedelta(hours=grace)
        ):
            usage.suspended_at = now
            _set_status(session, account, AccountStatus.suspended, "quota_suspend")


def _set_status(session: Session, account: Account, status: AccountStatus, action: str) -> None:
    old = account.status
    account.status = status
    audit.record(session, None, action, account, {"status": [old, str(status)]})
    bump_generations(session, hosts_of(session, account.id))


def hosts_due(session: Session, now: dt.datetime) -> list[int]:
    """Enabled hosts whose last collection is not in retry back-off."""
    waiting = set(session.scalars(select(HostUsage.host_id).where(HostUsage.retry_at > now)))
    enabled = session.scalars(select(Host.id).where(Host.enabled.is_(True)))
    return [h for h in enabled if h not in waiting]


# -- aggregation ---------------------------------------------------------------------------


def period_start(value: dt.datetime, granularity: str) -> dt.date:
    day = value.astimezone(dt.UTC).date()
    return day.replace(day=1) if granularity == "month" else day


ROLLUP_GRACE = dt.timedelta(hours=2)  # late collections of a day land before it rolls up
ACCOUNT_ROW = "*"


def rollup_day(session: Session, day: dt.date) -> None:
    """Roll one UTC day of samples into ``usage_daily`` (again, if it was already)."""
    lo = dt.datetime.combine(day, dt.time(), dt.UTC)
    hi = lo + dt.timedelta(days=1)
    session.execute(delete(UsageDaily).where(UsageDaily.day == day))
    # By metric and time: the (metric, time) index serves it (time alone has none).
    in_day = (
        UsageSample.metric.in_(sorted(METRICS)),
        UsageSample.time >= lo,
        UsageSample.time < hi,
    )
    per_object = (
        select(
            UsageSample.account_id,
            UsageSample.metric,
            literal(day, Date),
            UsageSample.object_type,
            func.coalesce(UsageSample.object_id, 0),
            func.count(),
            func.sum(UsageSample.value),
            func.max(UsageSample.value),
        )
        .where(*in_day)
        .group_by(
            UsageSample.account_id,
            UsageSample.metric,
            UsageSample.object_type,
            UsageSample.object_id,
        )
    )
    per_collection = (
        select(
            UsageSample.account_id.label("account_id"),
            UsageSample.metric.label("metric"),
            func.sum(UsageSample.value).label("value"),
        )
        .where(*in_day)
        .group_by(UsageSample.account_id, UsageSample.metric, UsageSample.time)
        .subquery()
    )
    per_account = select(
        per_collection.c.account_id,
        per_collection.c.metric,
        literal(day, Date),
        literal(ACCOUNT_ROW),
        literal(0),
        func.count(),
        func.sum(per_collection.c.value),
        func.max(per_collection.c.value),
    ).group_by(per_collection.c.account_id, per_collection.c.metric)
    columns = (
        "account_id",
        "metric",
        "day",
        "object_type",
        "object_id",
        "samples",
        "total",
        "peak",
    )
    for query in (per_object, per_account):
        session.execute(insert(UsageDaily).from_select(columns, query))
    session.merge(UsageRollup(day=day, done_at=utcnow()))


def rollup_pending(session: Session, now: dt.datetime | None = None) -> list[dt.date]:
    """Roll up every finished day not rolled up yet (from the first sample's day)."""
    now = now or utcnow()
    last_done = session.scalar(select(func.max(UsageRollup.day)))
    if last_done is None:
        first = session.scalar(select(func.min(UsageSample.time)))
        if first is None:
            return []
        day = first.astimezone(dt.UTC).date()
    else:
        day = last_done + dt.timedelta(days=1)
    done = []
    while dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC) + ROLLUP_GRACE <= now:
        rollup_day(session, day)
        done.append(day)
        day += dt.timedelta(days=1)
    return done


def aggregate(
    session: Session,
    account_ids: Sequence[int] | None,
    start: dt.datetime,
    end: dt.datetime,
    granularity: str,
    metrics: Sequence[str],
    *,
    detail: bool = False,
    by_account: bool = True,
) -> list[dict[str, Any]]:
    """Rows per (account, period, metric[, object]) — or per (period, metric) for the
    whole provider — with peak/average for levels and sum for counters, as the module's
    docstring says. Finished days come from ``usage_daily``, the rest from the samples.

    For the provider's totals (``by_account=False``) a day's peak is the sum of the
    accounts' peaks: an upper bound of the provider's own peak."""
    first_day, last_day = start.date(), (end - dt.timedelta(microseconds=1)).date()
    rolled = set(
        session.scalars(
            select(UsageRollup.day).where(UsageRollup.day >= first_day, UsageRollup.day <= last_day)
        )
    )
    # (account?, day, metric, object...) -> [samples, total, peak]
    days: dict[tuple[Any, ...], list[int]] = {}

    def add(key: tuple[Any, ...], samples: int, total: int, peak: int) -> None:
        have = days.get(key)
        if have is None:
            days[key] = [samples, total, peak]
        elif by_account:
            have[0], have[1], have[2] = have[0] + samples, have[1] + total, max(have[2], peak)
        else:  # accounts summed: collections counted once, totals and peaks added
            have[0], have[1], have[2] = max(have[0], samples), have[1] + total, have[2] + peak

    if rolled:
        daily: Any = select(
            UsageDaily.account_id,
            UsageDaily.day,
            UsageDaily.metric,
            UsageDaily.object_type,
            UsageDaily.object_id,
            UsageDaily.samples,
            UsageDaily.total,
            UsageDaily.peak,
        ).where(
            UsageDaily.day.in_(sorted(rolled)),
            UsageDaily.metric.in_(metrics),
            UsageDaily.object_type != ACCOUNT_ROW
            if detail
            else UsageDaily.object_type == ACCOUNT_ROW,
        )
        if account_ids is not None:
            daily = daily.where(UsageDaily.account_id.in_(account_ids))
        for account, day, metric, otype, oid, samples, total, peak in session.execute(daily):
            key = (
                *((account,) if by_account else ()),
                day,
                metric,
                *((otype, oid) if detail else ()),
            )
            add(key, samples, int(total), int(peak))
    for lo, hi in _raw_spans(start, end, rolled):
        for key, values in _raw(session, account_ids, lo, hi, metrics, detail, by_account):
            add(key, len(values), sum(values), max(values))

    buckets: dict[tuple[Any, ...], list[int]] = {}
    for key, (samples, total, peak) in days.items():
        account = key[:1] if by_account else ()
        day, metric, *obj = key[len(account) :]
        period = day.replace(day=1) if granularity == "month" else day
        bkey = (*account, period, metric, *obj)
        have = buckets.get(bkey)
        if have is None:
            buckets[bkey] = [samples, total, peak]
        else:
            have[0], have[1], have[2] = have[0] + samples, have[1] + total, max(have[2], peak)
    out: list[dict[str, Any]] = []
    for bkey in sorted(buckets, key=lambda k: tuple(str(x) for x in k)):
        samples, total, peak = buckets[bkey]
        account = bkey[:1] if by_account else ()
        period, metric, *obj = bkey[len(account) :]
        service, kind = METRICS[metric]
        item: dict[str, Any] = {
            **({"account_id": account[0]} if by_account else {}),
            "period": period.isoformat() if granularity == "day" else period.strftime("%Y-%m"),
            "metric": metric,
            "service": service,
            "kind": kind,
            "samples": samples,
        }
        if detail:
            item["object_type"], item["object_id"] = obj
        if kind == "counter":
            item.update(sum=total, peak=None, average=None)
        else:
            item.update(sum=None, peak=peak, average=round(total / samples))
        out.append(item)
    return out


def _raw_spans(
    start: dt.datetime, end: dt.datetime, rolled: set[dt.date]
) -> list[tuple[dt.datetime, dt.datetime]]:
    """The stretches of the window whose days are not rolled up (usually just today)."""
    spans: list[tuple[dt.datetime, dt.datetime]] = []
    day = start.date()
    while dt.datetime.combine(day, dt.time(), dt.UTC) < end:
        lo = max(start, dt.datetime.combine(day, dt.time(), dt.UTC))
        hi = min(end, dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), dt.UTC))
        if day not in rolled:
            if spans and spans[-1][1] == lo:
                spans[-1] = (spans[-1][0], hi)
            else:
                spans.append((lo, hi))
        day += dt.timedelta(days=1)
    return spans


def _raw(
    session: Session,
    account_ids: Sequence[int] | None,
    lo: dt.datetime,
    hi: dt.datetime,
    metrics: Sequence[str],
    detail: bool,
    by_account: bool,
) -> list[tuple[tuple[Any, ...], list[int]]]:
    """Per-collection values from the samples, keyed like the daily rows."""
    objects: tuple[Any, ...] = (UsageSample.object_type, UsageSample.object_id) if detail else ()
    owner: tuple[Any, ...] = (UsageSample.account_id,) if by_account else ()
    keys = (*owner, UsageSample.metric, UsageSample.time, *objects)
    query: Any = (
        select(*keys, func.sum(UsageSample.value))
        .where(UsageSample.time >= lo, UsageSample.time < hi, UsageSample.metric.in_(metrics))
        .group_by(*keys)
    )
    if account_ids is not None:
        query = query.where(UsageSample.account_id.in_(account_ids))
    grouped: dict[tuple[Any, ...], list[int]] = defaultdict(list)
    for row in session.execute(query):
        values = tuple(row)
        account = values[:1] if by_account else ()
        metric, time, *rest = values[len(account) :]
        *obj, value = rest
        day = time.astimezone(dt.UTC).date()
        grouped[(*account, day, metric, *obj)].append(int(value))
    return list(grouped.items())
