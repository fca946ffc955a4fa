"""Update status at the provider's scale and beyond: the inventory of 100,000 sites.

Seeds the api_lists bench's 100,000 sites (``--quick``: 10,000), then three platforms and
an application on most sites (20 % on a WordPress platform, 40 % WordPress by hand at
mixed versions, 10 % a Joomla by hand, 30 % nothing found), and times, in this process
against the panel's database, what the API's update status reads: the first inventory
page, a deep page, a page of sites behind, a sparse filter (Joomla), the per-app summary
(``/apps/status``) and the whole CSV.  Medians of 3.

    .venv/bin/python bench/update_status.py [--quick] [--database-url postgresql://...]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from api_lists_seed import FULL, QUICK, Scale, seed
from common import chunks, fresh_postgres, log, print_columns
from sqlalchemy import insert
from sqlalchemy.engine import make_url

VERSIONS = ("5.8.3", "6.0.1", "6.1.9", "6.2", "6.4.2")


def _seed_apps(url: str, sites: int) -> None:
    from panel.apps.models import Platform, SiteApp, SiteInventory
    from panel.core.db import make_engine, utcnow

    now = utcnow()
    engine = make_engine(url)
    platforms = [
        {"id": i, "name": f"wordpress-{v}", "app": "wordpress", "version": v, "sha256": "0" * 64,
         "size": 1, "source": "bench", "enabled": True, "auto_update": False, "window_hour": 3,
         "window_hours": 2, "created_at": now, "updated_at": now}
        for i, v in ((1, "6.1.9"), (2, "6.2"), (3, "6.4.2"))
    ]  # fmt: skip
    apps, found = [], []
    for site_id in range(1, sites + 1):
        account_id = (site_id - 1) // 5 + 1
        bucket = site_id % 10
        if bucket < 2:
            apps.append(
                {"site_id": site_id, "account_id": account_id, "platform_id": 1 + site_id % 3,
                 "app": "wordpress", "title": "T", "admin_user": "admin",
                 "admin_email": "a@b.test", "status": "active", "version": None,
                 "created_at": now, "updated_at": now}
            )  # fmt: skip
        elif bucket < 7:
            app, version = (
                ("joomla", "4.0.0") if bucket == 6 else ("wordpress", VERSIONS[site_id % 5])
            )
            found.append(
                {"site_id": site_id, "account_id": account_id, "app": app, "version": version,
                 "scanned_at": now}
            )  # fmt: skip
        else:
            found.append(
                {"site_id": site_id, "account_id": account_id, "app": None, "version": None,
                 "scanned_at": now}
            )  # fmt: skip
    with engine.begin() as conn:
        conn.execute(insert(Platform), platforms)
        for batch in chunks(apps):
            conn.execute(insert(SiteApp), batch)
        for batch in chunks(found):
            conn.execute(insert(SiteInventory), batch)
    engine.dispose()


def _median(fn: Callable[[], Any], runs: int = 3) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(runs):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10,000 sites")
    parser.add_argument("--database-url", help="a PostgreSQL URL (default: SQLite)")
    parser.add_argument("--data-dir", default="/var/tmp/konbit-bench-update-status")
    args = parser.parse_args(argv)
    base = QUICK if args.quick else FULL
    scale = Scale(base.accounts, base.sites_per_account, 0, 0, 0, 0)
    if args.database_url:
        url = args.database_url
        fresh_postgres(url)
    else:
        Path(args.data_dir).mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{args.data_dir}/konbit.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            Path(str(make_url(url).database) + suffix).unlink(missing_ok=True)

    from panel.apps import inventory
    from panel.core.db import Database
    from panel.core.migrate import upgrade

    t = time.perf_counter()
    upgrade(url)
    seed(url, scale)
    _seed_apps(url, scale.sites)
    log(f"seeded {scale.sites} sites and their applications in {time.perf_counter() - t:.1f}s")

    db = Database(url)
    rows = []
    with db.session() as session:
        cases: list[tuple[str, Callable[[], Any], Callable[[Any], str]]] = [
            ("first page (100)", lambda: inventory.entries(session, limit=100),
             lambda r: f"{len(r[0])} rows"),
            ("deep page (100 after 90 %)",
             lambda: inventory.entries(session, after=scale.sites * 9 // 10, limit=100),
             lambda r: f"{len(r[0])} rows"),
            ("behind=true page (100)",
             lambda: inventory.entries(session, behind=True, limit=100),
             lambda r: f"{len(r[0])} rows"),
            ("app=joomla page (100)",
             lambda: inventory.entries(session, app="joomla", limit=100),
             lambda r: f"{len(r[0])} rows"),
            ("summary (/apps/status)", lambda: inventory.summary(session),
             lambda r: ", ".join(f"{s.app} {s.sites}/{s.behind} behind" for s in r)),
            ("whole CSV", lambda: inventory.csv_text(session),
             lambda r: f"{r.count(chr(10)) - 1} rows, {len(r):,} bytes"),
        ]  # fmt: skip
        for name, fn, say in cases:
            seconds, out = _median(fn)
            rows.append((name, f"{seconds * 1000:.1f} ms", say(out)))
            session.rollback()
    backend = make_url(url).get_backend_name()
    print(f"\ninventory of {scale.sites:,} sites on {backend} (median of 3, in process)")
    print_columns(("read", "time", "what"), rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
