"""Benchmark: the Python side of one no-op plan at N sites, with no host and no SSH.

Renders every web plugin's files for N sites, hashes them, parses a facts answer that
matches (so the plan is a no-op) and diffs: what the panel's CPU pays per reconcile
before any byte moves. Prints the median of ``--repeat`` plans per N.

    .venv/bin/python bench/plan.py                 # 1,000 and 10,000 sites
    .venv/bin/python bench/plan.py --sizes 1000 --repeat 30
"""

from __future__ import annotations

import argparse
import hashlib
import statistics
import time

from provisioners.api import AccountView, DesiredState, HostView, SiteView
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins
from provisioners.testing import FakeRunner


def state_of(n: int) -> DesiredState:
    accounts = [AccountView(i + 1, f"acct{i}", "active") for i in range(max(1, n // 5))]
    sites = tuple(
        SiteView(
            i + 1,
            1,
            accounts[i % len(accounts)],
            f"s{i}.example.test",
            (f"www.s{i}.example.test",),
            f"s{i}.example.test",
            "8.2",
            "off",
            True,
            False,
        )
        for i in range(n)
    )
    host = HostView(1, "web1", ("web",), {"web_server": "nginx", "php_versions": ["8.2"]})
    return DesiredState(host=host, accounts=tuple(accounts), sites=sites)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,10000")
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    engine = HostEngine(load_plugins())
    print(f"{'N':>6}  {'plan median':>12}  changes  steps")
    for n in (int(x) for x in args.sizes.split(",")):
        state = state_of(n)
        files = {f.path: f for p in engine.for_state(state) for f in p.render(state)}
        fake = FakeRunner().facts(
            manifest={p: hashlib.sha256(f.content).hexdigest() for p, f in files.items()},
            users={a.slug: 1000 + a.id for a in state.accounts},
        )
        times = []
        for _ in range(args.repeat):
            started = time.perf_counter()
            plan = engine.plan(fake, state)
            times.append(time.perf_counter() - started)
        print(
            f"{n:>6}  {statistics.median(times) * 1000:>9.1f} ms  {len(plan.changes):>7}  "
            f"{len(plan.steps):>5}"
        )


if __name__ == "__main__":
    main()
