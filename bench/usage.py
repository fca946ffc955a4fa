"""Benchmark: usage collection over three real test hosts, and the usage API over a year.

Collection (issue 7: "one collection over a mail host with 10,000 mailboxes, a web host
with 2,000 sites and a db host with 1,000 databases, under 10 s in total"):

* a panel database (SQLite in the work dir) holds three hosts, the accounts and every
  site, mailbox and database, bulk-inserted; each host's desired state is the panel's own
  ``snapshot`` of it, applied once with ``HostEngine`` (untimed setup);
* the hosts are then filled from this machine through their root file systems (fast,
  untimed): per site a file in its document root and an access log in nginx's ``konbit``
  format (one site in ten has none), a few Maildir messages (``,S=<size>`` names) in one
  mailbox in five, and a few InnoDB tables in each database;
* timed: the host side alone (``provisioners.usage.collect``: one exec per host, parsed),
  sequential and in three threads; then the whole path the worker runs
  (``panel.usage.service.collect_host``: snapshot, SSH connect, collect, store the samples,
  cursors and quotas in one transaction) sequential, then again in three threads with no
  new traffic (it must add 0 requests), then after appending known traffic to some sites
  (it must add exactly that).

API (issue 7: "the usage API for one account over a year at daily granularity under 100
ms"): a second panel database seeded with a year (8,760 hours) of hourly samples for a
typical account (5 sites, 10 mailboxes, 2 databases: 38 series) and for ``--others``
lighter accounts (1 site, 2 mailboxes, 1 database: 9 series), written in time order as
collections would write them; ``konbit serve`` (real server, one uvicorn worker, a billing
token over HTTP/1.1 keep-alive) answers ``GET /api/v1/usage?account_id=&from=&to=
&granularity=day`` 50 times, with and without ``detail=true``: p50/p95.  In-process, the
same aggregation is split into SQL (engine only), SQL + row decoding, and Python
bucketing; and a bench-side prototype of a daily rollup table is timed for comparison.

    .venv/bin/python bench/usage.py --quick          # 1/10 sizes, 30 other accounts (~3 min)
    .venv/bin/python bench/usage.py                  # full sizes (~10 min)
    .venv/bin/python bench/usage.py --no-hosts --database-url \
        postgresql://postgres@127.0.0.1:55432/konbit_bench_usage     # API part on PostgreSQL
    .venv/bin/python bench/usage.py --no-api         # collection only

Runs as root (test hosts) on the lab bridge thkb8 (10.77.28.0/24).  The PostgreSQL database
name must contain "bench": it is dropped and recreated.  Work dir /var/tmp/konbit-bench-usage
[-quick] (SQLite files, server log).  Exit status 1 when a target is missed or a check fails.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
from pathlib import Path

from common import log
from usage_api import bench_api
from usage_collect import bench_collection
from usage_seed import FULL, QUICK, Row, Sizes, load

import panel.models  # noqa: F401  (every table in the metadata)

# -- main ------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    print(f"\n{'case':<52} {'seconds':>9}  {'target':<12} {'':<5} note")
    for r in rows:
        figure = f"{r.seconds:9.0f}" if r.case.endswith("adds") else f"{r.seconds:9.3f}"
        print(f"{r.case:<52} {figure}  {r.target:<12} {r.verdict:<5} {r.note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="1/10 sizes, 30 other accounts")
    parser.add_argument("--no-hosts", action="store_true", help="skip the collection part")
    parser.add_argument("--no-api", action="store_true", help="skip the API part")
    parser.add_argument("--no-rollup", action="store_true", help="skip the rollup prototype")
    parser.add_argument("--database-url", help="PostgreSQL for the API part (name has 'bench')")
    parser.add_argument("--others", type=int, help="other accounts with a year of samples")
    parser.add_argument("--requests", type=int, default=50)
    args = parser.parse_args()
    if os.geteuid() != 0 and not args.no_hosts:
        sys.exit("run as root (test hosts)")
    sizes = QUICK if args.quick else FULL
    if args.others is not None:
        sizes = Sizes(**{**sizes.__dict__, "others": args.others})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    work = Path("/var/tmp/konbit-bench-usage" + ("-quick" if args.quick else ""))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[Row] = []
    checks: list[str] = []
    log(f"sizes {sizes}; load {load()}")
    if not args.no_hosts:
        bench_collection(work, sizes, rows, checks)
    if not args.no_api:
        bench_api(work, args.database_url, sizes, args.requests, rows, not args.no_rollup)
    print_table(rows)
    for c in checks:
        print(f"CHECK FAILED: {c}")
    print(f"\nload at the end: {load()}")
    print("command: " + " ".join([Path(sys.executable).name, *sys.argv]))
    missed = [r for r in rows if r.verdict == "MISS"]
    sys.exit(1 if missed or checks else 0)


if __name__ == "__main__":
    main()
