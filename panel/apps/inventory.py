# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key, which PEP 544 allows and mypy flags:
# python/mypy#4717.)
"""Update status: which application and version every site runs, those on a platform
and those a member installed by hand, beside the newest platform of each application.

A scan task reads, per web host over one connection and one exec per 500 sites, the few
files that tell an application's version (``panel.apps.detect.PROBES``), as each site's
own user; what the files say is kept in ``app_inventory``.  The worker scans every web
host once a day; staff may start a scan at any time."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import logging
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, insert, or_, select
from sqlalchemy.orm import Session

from panel.accounts.models import Account
from panel.apps.detect import PROBES, detect
from panel.apps.models import SiteApp, SiteInventory
from panel.apps.service import Newest
from panel.core.auth import Principal
from panel.core.db import ObjectStatus, utcnow
from panel.hosts import service as hosts
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.tasks.run.job import Job, TaskFailed, run
from panel.tasks.service import ACTIVE_STATES, enqueue
from provisioners.api import Applications, NotOffered, offered
from provisioners.transport import TransportError

log = logging.getLogger("konbit.apps")
CHUNK = 500  # document roots per exec: one argv stays far below the host's ARG_MAX


def start_scan(session: Session, principal: Principal | None) -> Task:
    """The scan task of every web host; one that is under way already is returned as is."""
    under_way = session.scalars(
        select(Task).where(Task.kind == TaskKind.app_scan, Task.status.in_(ACTIVE_STATES))
    ).first()
    if under_way is not None:
        return under_way
    return enqueue(
        session,
        Task(
            account_id=None,
            kind=TaskKind.app_scan,
            params={},
            user_id=principal.user.id if principal else None,
        ),
    )


def do_scan(job: Job) -> None:
    """Every enabled web host in turn; a host that cannot be reached keeps its last scan
    and is named in the result (the task fails at the end, the other hosts are scanned)."""
    with job.db.session() as session:
        web = [(h.id, h.name) for h in hosts.hosts_with_role(session, "web")]
    try:
        apps = offered(job.plugins, Applications)
    except NotOffered as exc:
        raise TaskFailed(str(exc)) from None
    found: Counter[str] = Counter()
    failed: dict[str, str] = {}
    for n, (host_id, name) in enumerate(web, 1):
        roots = _roots(job, host_id)
        if not roots:
            continue
        try:
            read: dict[int, dict[str, str]] = {}
            with job.host(host_id) as conn:
                for chunk in _chunks(sorted(roots), CHUNK):
                    got = run(conn, apps.scan({s: roots[s] for s in chunk}, PROBES), check=True)
                    read.update(apps.parse_scan(got.text()))
        except TransportError as exc:
            failed[name] = str(exc)[:300]
            job.say(f"{name}: not scanned ({exc}); its sites keep their last scan")
            continue
        counts = _store(job, roots, read)
        found.update(counts)
        job.say(
            f"{name}: {len(roots)} sites, "
            + (", ".join(f"{c} {a}" for a, c in sorted(counts.items())) or "no application"),
            100 * n // len(web),
        )
    job.result(apps=dict(sorted(found.items())), unreachable=failed)
    if failed:
        raise TaskFailed(f"{len(failed)} web host(s) could not be scanned: {', '.join(failed)}")


def _chunks(items: list[int], size: int) -> Iterator[list[int]]:
    for i in range(0, len(items), size):
        yield items[i : i + size]


def _roots(job: Job, host_id: int) -> dict[int, tuple[str, str]]:
    """site id -> (its unix user, its document root) for the host's live sites."""
    with job.db.session() as session:
        rows = session.execute(
            select(Site.id, Account.slug, Site.document_root)
            .join(Account, Account.id == Site.account_id)
            .where(Site.host_id == host_id, Site.status == ObjectStatus.active)
        ).all()
    return {sid: (slug, job.site_root(slug, root)) for sid, slug, root in rows}


def _store(
    job: Job, roots: dict[int, tuple[str, str]], read: dict[int, dict[str, str]]
) -> Counter[str]:
    now = utcnow()
    counts: Counter[str] = Counter()
    rows: list[dict[str, Any]] = []
    for site_id in roots:
        files = read.get(site_id, {})
        seen = detect(files.get)
        if seen:
            counts[seen.app] += 1
        rows.append(
            {
                "site_id": site_id,
                "app": seen.app if seen else None,
                "version": seen.version if seen else None,
                "scanned_at": now,
            }
        )
    with job.db.session() as session:
        # A site deleted since the roots were read has no row to keep.
        owners = {
            sid: acc
            for sid, acc in session.execute(
                select(Site.id, Site.account_id).where(Site.id.in_(list(roots)))
            )
        }
        rows = [{**r, "account_id": owners[r["site_id"]]} for r in rows if r["site_id"] in owners]
        session.execute(delete(SiteInventory).where(SiteInventory.site_id.in_(list(owners))))
        if rows:
            session.execute(insert(SiteInventory), rows)
        session.commit()
    return counts


# -------------------------------------------------------------------- reading the inventory


@dataclass(frozen=True)
class Entry:
    """One site's application, as the update status shows it."""

    site_id: int
    domain: str
    account_id: int
    account: str
    app: str
    version: str | None
    platform: str | None  # None: installed by hand (found by the scan)
    newest_version: str | None  # of the app's newest platform; None: there is none
    behind: bool | None  # None: no platform of this app to compare with
    scanned_at: dt.datetime | None


COLUMNS = (
    "site_id",
    "domain",
    "account",
    "app",
    "version",
    "platform",
    "newest_version",
    "behind",
    "scanned_at",
)


def entries(
    session: Session,
    *,
    after: int = 0,
    limit: int | None = None,
    app: str | None = None,
    behind: bool | None = None,
    account_ids: Sequence[int] | None = None,
) -> tuple[list[Entry], int | None]:
    """Sites with an application in site id order after ``after``; the last id read when
    there may be more (the next page's cursor), else None.  ``behind`` filters in Python
    (versions do not sort in SQL), reading batches until the page is full."""
    newest = Newest(session)
    out: list[Entry] = []
    # A row the behind filter drops still costs its read: bigger reads when it may drop most.
    batch = limit + 1 if limit is not None and behind is None else 2_000
    while True:
        stmt = (
            select(
                Site.id,
                Site.domain,
                Site.account_id,
                Account.slug,
                SiteApp.app,
                SiteApp.platform_id,
                SiteApp.version,
                SiteInventory.app,
                SiteInventory.version,
                SiteInventory.scanned_at,
            )
            .join(Account, Account.id == Site.account_id)
            .outerjoin(SiteApp, SiteApp.site_id == Site.id)
            .outerjoin(SiteInventory, SiteInventory.site_id == Site.id)
            .where(Site.id > after, or_(SiteApp.id.is_not(None), SiteInventory.app.is_not(None)))
            .order_by(Site.id)
            .limit(batch)
        )
        if app is not None:
            stmt = stmt.where(or_(SiteApp.app == app, SiteInventory.app == app))
        if account_ids is not None:
            stmt = stmt.where(Site.account_id.in_(account_ids))
        rows = session.execute(stmt).all()
        for sid, domain, acc_id, slug, m_app, pid, m_ver, d_app, d_ver, scanned in rows:
            after = sid
            name = m_app or d_app
            if name is None or (app is not None and name != app):
                continue
            plat = newest.by_id.get(pid) if pid is not None else None
            version = (m_ver or (plat.version if plat else None)) if m_app else d_ver
            late = newest.behind(name, pid, version)
            if behind is not None and late is not behind:
                continue
            best = newest.best.get(name)
            out.append(
                Entry(
                    sid, domain, acc_id, slug, name, version, plat.name if plat else None,
                    best.version if best else None, late, scanned,
                )
            )  # fmt: skip
            if limit is not None and len(out) == limit:
                return out, sid
        if len(rows) < batch:
            return out, None


def sites_per_platform(session: Session) -> dict[int, int]:
    """Platform id -> how many sites run on it (a platform no site uses is absent)."""
    rows = session.execute(select(SiteApp.platform_id, func.count()).group_by(SiteApp.platform_id))
    return {platform_id: count for platform_id, count in rows}


def csv_text(
    session: Session,
    *,
    app: str | None = None,
    behind: bool | None = None,
    account_ids: Sequence[int] | None = None,
) -> str:
    """The whole inventory (as filtered) as CSV, ``COLUMNS`` first."""
    buf = io.StringIO()
    out = csv.writer(buf, lineterminator="\n")
    out.writerow(COLUMNS)
    after: int | None = 0
    while after is not None:
        found, after = entries(
            session, after=after, limit=5_000, app=app, behind=behind, account_ids=account_ids
        )
        for e in found:
            row = dataclasses.asdict(e)
            out.writerow("" if row[c] is None else row[c] for c in COLUMNS)
    return buf.getvalue()


@dataclass(frozen=True)
class Summary:
    app: str
    newest_platform: str | None
    newest_version: str | None
    sites: int
    on_platforms: int
    by_hand: int
    behind: int


def summary(session: Session) -> list[Summary]:
    """Per application: sites on its platforms and installed by hand, how many behind.
    Counted in SQL per (app, platform) and (app, version): versions are compared once per
    distinct version, not once per site."""
    newest = Newest(session)
    tally: dict[str, Counter[str]] = {app: Counter() for app in newest.best}
    managed = session.execute(
        select(SiteApp.app, SiteApp.platform_id, func.count()).group_by(
            SiteApp.app, SiteApp.platform_id
        )
    )
    for app, platform_id, count in managed:
        c = tally.setdefault(app, Counter())
        c["sites"] += count
        c["on_platforms"] += count
        c["behind"] += count if newest.behind(app, platform_id, None) else 0
    by_hand = session.execute(
        select(SiteInventory.app, SiteInventory.version, func.count())
        .outerjoin(SiteApp, SiteApp.site_id == SiteInventory.site_id)
        .where(SiteApp.id.is_(None), SiteInventory.app.is_not(None))
        .group_by(SiteInventory.app, SiteInventory.version)
    )
    for found, version, count in by_hand:
        if found is None:  # the query leaves these out; the column may hold them
            continue
        c = tally.setdefault(found, Counter())
        c["sites"] += count
        c["by_hand"] += count
        c["behind"] += count if newest.behind(found, None, version) else 0
    out = []
    for app in sorted(tally):
        best, c = newest.best.get(app), tally[app]
        out.append(
            Summary(
                app, best.name if best else None, best.version if best else None,
                c["sites"], c["on_platforms"], c["by_hand"], c["behind"],
            )
        )  # fmt: skip
    return out
