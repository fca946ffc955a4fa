"""Benchmark: databases and their users on one real db test host, per engine.

For each engine (MariaDB, PostgreSQL) on one fresh db test host, N databases (default
1,000) each with one user granted it, spread over N/10 accounts:

* first apply: every database, user and grant created (batched statements);
* no-op reconcile: nothing changed (the fact query per engine and nothing else);
* one added: one more database and one more user granted it.

Each case is timed around ``HostEngine.apply`` including the SSH connect, as the panel
does per reconcile, with the SSH execs it took (``conn.commands``).  No-op and one-added
are run ``--repeat`` times (median; each one-added adds a new pair).  The fact query alone
(one exec over an open connection) is timed too: it is the floor of every reconcile.

    .venv/bin/python bench/databases.py                     # 1,000 per engine
    .venv/bin/python bench/databases.py --size 200 --engines mariadb

Targets (issue 5): no-op under 1 s, one added under 1.5 s.  Figures only: this script
never asserts.  Runs as root (test hosts) on its own bridge (10.77.42.0/24).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import paramiko
from common import panel_key

from panel.databases.secrets import verifier_for
from panel.testhosts import Lab
from provisioners.api import AccountView, DatabaseUserView, DatabaseView, DesiredState, HostView
from provisioners.databases import MariaDB, PostgreSQL
from provisioners.engine import HostEngine
from provisioners.transport import Connection, Target

TARGET_NOOP = 1.0
TARGET_ONE_ADDED = 1.5


@dataclass
class Measure:
    seconds: float
    execs: int
    result: str
    error: str = ""


def build_state(engine: str, n: int, extra: int = 0) -> DesiredState:
    """N databases + N users (one grant each) over N/10 accounts, plus ``extra`` pairs."""
    host = HostView(1, "dbbench", ("db",), {"engines": [engine]})
    dbs: list[DatabaseView] = []
    users: list[DatabaseUserView] = []
    for i in range(n + extra):
        account = AccountView(1 + i // 10, f"b{i // 10:04d}", "active")
        name = f"{account.slug}_d{i % 10 if i < n else i}"
        dbs.append(DatabaseView(i + 1, 1, account, engine, name, False))
        users.append(
            DatabaseUserView(
                i + 1,
                1,
                account,
                engine,
                f"{account.slug}_u{i % 10 if i < n else i}",
                VERIFIERS[engine],
                (name,),
                False,
            )
        )
    return DesiredState(host=host, databases=tuple(dbs), database_users=tuple(users))


VERIFIERS = {e: verifier_for(e, "bench password") for e in ("mariadb", "postgresql")}


def apply(
    target: Target, key: paramiko.PKey, engine: HostEngine, state: DesiredState, label: str
) -> Measure:
    started = time.perf_counter()
    with Connection(target, key) as conn:
        outcome = engine.apply(conn, state, label)
        execs = conn.commands
    seconds = time.perf_counter() - started
    return Measure(seconds, execs, outcome.result, outcome.error or "")


def facts_only(
    target: Target, key: paramiko.PKey, engine: HostEngine, state: DesiredState
) -> float:
    with Connection(target, key) as conn:
        engine.read_facts(conn, state)  # warm
        started = time.perf_counter()
        engine.read_facts(conn, state)
        return time.perf_counter() - started


def median(runs: Sequence[Measure]) -> Measure:
    ordered = sorted(runs, key=lambda m: m.seconds)
    return ordered[len(ordered) // 2]


def row(case: str, m: Measure, target: float | None = None) -> str:
    verdict = ""
    if target is not None:
        verdict = f"target < {target:.1f} s: " + ("met" if m.seconds < target else "MISSED")
    error = f"  [{m.error[:120]}]" if m.error else ""
    return f"  {case:<22} {m.seconds:8.2f} s  {m.execs:3d} execs  {m.result:<8} {verdict}{error}"


def bench_engine(target: Target, key: paramiko.PKey, engine_name: str, n: int, repeat: int) -> bool:
    plugin = MariaDB() if engine_name == "mariadb" else PostgreSQL()
    engine = HostEngine([plugin])
    state = build_state(engine_name, n)
    print(f"\n{engine_name}: {n} databases, {n} users, {n} grants")
    first = apply(target, key, engine, state, f"{engine_name}-first")
    print(row("first apply", first))
    noops = [apply(target, key, engine, state, f"{engine_name}-noop{i}") for i in range(repeat)]
    noop = median(noops)
    print(row("no-op reconcile", noop, TARGET_NOOP))
    print(f"  {'':<22} runs: {', '.join(f'{m.seconds:.2f}' for m in noops)} s")
    added: list[Measure] = []
    for i in range(repeat):
        state = build_state(engine_name, n, extra=i + 1)
        added.append(apply(target, key, engine, state, f"{engine_name}-add{i}"))
    one = median(added)
    print(row("one added", one, TARGET_ONE_ADDED))
    print(f"  {'':<22} runs: {', '.join(f'{m.seconds:.2f}' for m in added)} s")
    print(f"  {'fact query alone':<22} {facts_only(target, key, engine, state):8.2f} s  (1 exec)")
    return (
        noop.seconds < TARGET_NOOP
        and one.seconds < TARGET_ONE_ADDED
        and all(m.result != "failed" for m in (first, *noops, *added))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="databases (and users)")
    parser.add_argument("--engines", default="mariadb,postgresql")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")
    ok = True
    with tempfile.TemporaryDirectory(prefix="konbit-bench-databases-") as tmp:
        key_path = Path(tmp) / "id_ed25519"
        key, pub = panel_key(key_path)
        with Lab(bridge="thbd0", subnet="10.77.42", veth_prefix="bd-") as lab:
            lab.ensure_base()
            for engine_name in args.engines.split(","):
                host = lab.start("dbbench", roles=["db"], authorized_keys=[pub])
                host.wait_ready(120)
                target = Target("dbbench", host.address, 22, "root", host.host_key)
                ok = bench_engine(target, key, engine_name, args.size, args.repeat) and ok
                host.stop()
    print("\nall targets met" if ok else "\nsome target missed or a case failed")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
