"""Benchmark: list and get API requests at scale, against the real server.

Seeds 20,000 accounts and 100,000 sites (bulk core inserts), starts ``konbit serve`` and
measures p50/p99 of listing sites (first page, a deep cursor page, by account, as a member)
and of getting one site, at 1 and 20 concurrent clients, each beside /healthz measured in the
same run. Target: p50 and p99 within 3x of /healthz. Then counts the SQL statements of every
list endpoint at limit=10/50/200, in-process: the count must not grow with the page size.

    .venv/bin/python bench/api_lists.py --quick            # smoke run, under a minute
    .venv/bin/python bench/api_lists.py                    # full size, SQLite
    .venv/bin/python bench/api_lists.py --reuse            # keep the seeded database
    .venv/bin/python bench/api_lists.py \\
        --database-url postgresql://postgres@127.0.0.1:55432/konbit_bench
    .venv/bin/python bench/api_lists.py --reuse --profile sites-first   # cProfile one case
    .venv/bin/python bench/api_lists.py --reuse --stress 60 --stress 100  # many clients

The load generator is ``wrk`` (``apt-get install wrk``): one C thread that barely uses the
CPU the single uvicorn worker needs on a small machine. ``--client python`` uses an asyncio
httpx2 client instead (it competes with the server for CPU, so its numbers run high).
``users-me`` (token lookup only) is shown as a reference floor, not judged. ``bg%`` is the
CPU other processes took during a case: the machine may be shared, so rows with a high bg%
are noise until rerun.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from api_lists_load import STALL_MS, TARGET_RATIO, judged, measure, table
from api_lists_queries import count_queries, profile
from api_lists_seed import FULL, QUICK, prepare
from sqlalchemy.engine import make_url

# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--quick", action="store_true", help="2,000 accounts, fewer requests")
    ap.add_argument("--reuse", action="store_true", help="keep a seeded database of this size")
    ap.add_argument(
        "--database-url",
        help="PostgreSQL URL (its database name must say 'bench'"
        "; it is dropped and recreated unless --reuse)",
    )
    ap.add_argument(
        "--data-dir",
        help="data dir of the SQLite database and the server log "
        "(default /var/tmp/konbit-bench[-quick])",
    )
    ap.add_argument("--client", choices=("wrk", "python"), default="wrk")
    ap.add_argument("--skip-load", action="store_true", help="only seed and count queries")
    ap.add_argument("--skip-queries", action="store_true", help="skip the query count")
    ap.add_argument("--profile", metavar="CASE", help="cProfile one case in-process and stop")
    ap.add_argument(
        "--stress",
        metavar="N",
        type=int,
        action="append",
        default=[],
        help="also list sites with N clients (repeatable), e.g. --stress 60",
    )
    args = ap.parse_args(argv)

    scale = QUICK if args.quick else FULL
    args.data_dir = args.data_dir or f"/var/tmp/konbit-bench{'-quick' if args.quick else ''}"
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    if args.client == "wrk" and not shutil.which("wrk"):
        sys.exit("wrk not found: apt-get install -y wrk (or --client python)")

    seeded = prepare(args, scale)
    backend = make_url(seeded.url).get_backend_name()
    if args.profile:
        profile(seeded, data_dir, args.profile, 300)
        return 0

    ok = True
    if not args.skip_queries:
        print(
            f"\nSQL statements per request ({backend}, {scale.accounts} accounts, "
            f"{scale.sites} sites): rows returned / statements, at limit=10, 50, 200"
        )
        ok = count_queries(seeded, data_dir)
        print(
            "query count does not grow with the page size"
            if ok
            else "QUERY COUNT GROWS with the page size"
        )
    if not args.skip_load:
        results, stressed = measure(
            seeded, scale, data_dir, args.client, data_dir / "server.log", args.stress
        )
        print(
            f"\nLatency ({backend}, {scale.accounts} accounts, {scale.sites} sites, "
            f"client {args.client}, 1 uvicorn worker, {os.cpu_count()} CPUs); "
            f"target: p50 and p99 within {TARGET_RATIO:g}x of /healthz at the same concurrency"
        )
        rows = judged(results)
        print(table(rows))
        noisy = [r for r in results if r.bg_pct > 10]
        print(
            f"bg% = CPU other processes took during the case, as a share of all "
            f"{os.cpu_count()} CPUs"
            + (
                f"; {len(noisy)} case(s) above 10%: rerun on a quiet machine before trusting them"
                if noisy
                else ""
            )
        )
        ok = ok and all(v != "MISS" for *_, v in rows)
        if stressed:
            print(
                f"\nStress, sites-first (errors or a p99 over {STALL_MS / 1000:g} s = STALL; "
                f"see {data_dir / 'server.log'})"
            )
            print(
                f"{'conc':>5} {'n':>6} {'p50 ms':>9} {'p99 ms':>9} {'req/s':>7} {'err':>5}  verdict"
            )
            for r in stressed:
                stalled = r.errors > 0 or r.p99_ms > STALL_MS or r.requests == 0
                print(
                    f"{r.conc:>5} {r.requests:>6} {r.p50_ms:>9.1f} {r.p99_ms:>9.1f} "
                    f"{r.rps:>7.1f} {r.errors:>5}  {'STALL' if stalled else 'ok'}"
                )
                ok = ok and not stalled
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
