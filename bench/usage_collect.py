"""The usage bench's collection: the host side alone, the worker's whole path (sequential
and in threads), the stored figures and the checks on repeated collections."""

from __future__ import annotations

import datetime as dt
import resource
import shutil
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import log, panel_key
from usage_seed import (
    T0,
    Row,
    Sizes,
    load,
    populate_db,
    populate_mail,
    populate_web,
    seed_objects,
    sh,
    write_traffic,
)

import panel.models  # noqa: F401  (every table in the metadata)
from panel.core.db import Database
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.models import Host
from panel.hosts.reconcile import snapshot
from panel.testhosts import Lab
from panel.usage import service as usage_service
from panel.usage.models import UsageSample
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins
from provisioners.transport import Connection, Target
from provisioners.usage import Collection, collect

COLLECT_TARGET = 10.0  # s, one collection over the three hosts


# -- collection ------------------------------------------------------------------------


def host_side(
    target: Target, key: Any, state: Any, plugins: Sequence[Any]
) -> tuple[float, float, Collection]:
    """(connect + collect seconds, collect-only seconds, result), empty cursors."""
    started = time.perf_counter()
    with Connection(target, key) as conn:
        c0 = time.perf_counter()
        result = collect(conn, state, plugins, {})
        done = time.perf_counter()
    return done - started, done - c0, result


def run_all(
    fns: dict[str, Callable[[], Any]], parallel: bool
) -> tuple[float, dict[str, tuple[float, Any]]]:
    def timed(fn: Callable[[], Any]) -> tuple[float, Any]:
        t = time.perf_counter()
        out = fn()
        return time.perf_counter() - t, out

    started = time.perf_counter()
    if parallel:
        with ThreadPoolExecutor(len(fns)) as pool:
            futures = {k: pool.submit(timed, fn) for k, fn in fns.items()}
            results = {k: f.result() for k, f in futures.items()}
    else:
        results = {k: timed(fn) for k, fn in fns.items()}
    return time.perf_counter() - started, results


def stored(db: Database, at: dt.datetime, metric: str) -> tuple[int, int]:
    with db.session() as session:
        count, total = session.execute(
            sa.select(sa.func.count(), sa.func.coalesce(sa.func.sum(UsageSample.value), 0)).where(
                UsageSample.time == at, UsageSample.metric == metric
            )
        ).one()
    return int(count), int(total)


def bench_collection(work: Path, sizes: Sizes, rows: list[Row], checks: list[str]) -> None:
    data = work / "collect"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    settings = Settings(data_dir=data, database_url=None)
    url = settings.effective_database_url
    key_path = settings.ssh_key_path
    key, pub = panel_key(key_path)
    plugins = load_plugins()
    with Lab(bridge="thkb8", subnet="10.77.28", veth_prefix="k8-") as lab:
        lab.ensure_base()
        t = time.perf_counter()
        hosts = {
            "web": lab.start("uweb", roles=["web"], authorized_keys=[pub]),
            "mail": lab.start("umail", roles=["mail"], authorized_keys=[pub]),
            "db": lab.start("udb", roles=["db"], authorized_keys=[pub]),
        }
        for h in hosts.values():
            h.wait_ready(180)
        log(
            f"hosts ready in {time.perf_counter() - t:.1f}s: "
            + ", ".join(f"{k}={h.address}" for k, h in hosts.items())
        )
        # nginx -t in an SSH session opens every site's log: past the 1,024 soft limit.
        nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        sh(
            hosts["web"],
            f"printf 'root soft nofile {nofile}\\n' > /etc/security/limits.d/zz-konbit-bench.conf",
        )
        upgrade(url)
        seed_objects(url, sizes, hosts)
        db = Database(url)
        states: dict[str, Any] = {}
        targets: dict[str, Target] = {}
        host_ids: dict[str, int] = {}
        with db.session() as session:
            for kind, test_host in hosts.items():
                row = session.scalars(sa.select(Host).where(Host.name == test_host.name)).one()
                snap = snapshot(session, row)
                states[kind], targets[kind], host_ids[kind] = snap.state, snap.target, row.id
        engine = HostEngine(plugins)
        for kind in hosts:
            t = time.perf_counter()
            with Connection(targets[kind], key) as conn:
                outcome = engine.apply(conn, states[kind], f"usage-bench-{kind}")
            if outcome.result != "applied":
                raise RuntimeError(
                    f"apply {kind}: {outcome.result}: {(outcome.error or '')[:2000]}"
                )
            log(f"applied {kind} in {time.perf_counter() - t:.1f}s")
        t = time.perf_counter()
        files, requests, sent = populate_web(hosts["web"], states["web"], sizes)
        messages = populate_mail(hosts["mail"], states["mail"])
        log(
            f"web: {files} docroot files, {requests} log lines; mail: {messages} messages "
            f"({time.perf_counter() - t:.1f}s)"
        )
        t = time.perf_counter()
        tables = populate_db(hosts["db"], states["db"], sizes.tables_per_db)
        log(f"db: {tables} tables ({time.perf_counter() - t:.1f}s)")
        sh(hosts["web"], "sync")
        objects = {
            "web": f"{len(states['web'].sites)} sites",
            "mail": f"{len(states['mail'].mailboxes)} mailboxes",
            "db": f"{len(states['db'].databases)} databases",
        }

        # 1. host side only, sequential then parallel (empty cursors: every log read whole)
        for parallel in (False, True):
            mode = "parallel" if parallel else "sequential"
            wall, results = run_all(
                {
                    k: (lambda k=k: host_side(targets[k], key, states[k], plugins))  # type: ignore[misc]
                    for k in hosts
                },
                parallel,
            )
            log(f"host side {mode}: {wall:.2f}s (load {load()})")
            for kind, (_, (total, only, res)) in results.items():
                rows.append(
                    Row(
                        f"host side {kind} ({objects[kind]})",
                        total,
                        note=(
                            f"{mode}; exec+parse {only:.2f}s, connect {total - only:.2f}s, "
                            f"{len(res.samples)} samples"
                        ),
                    )
                )
            rows.append(
                Row(
                    f"host side, 3 hosts {mode}",
                    wall,
                    f"< {COLLECT_TARGET:.0f} s",
                    verdict(wall < COLLECT_TARGET),
                    f"load {load()}",
                )
            )
            web_res = results["web"][1][2]
            got = sum(s.value for s in web_res.samples if s.metric == "http_requests")
            if got != requests:
                checks.append(f"host side {mode}: {got} requests counted, {requests} written")

        # 2. the whole path (collect_host), sequential, then parallel without new traffic
        def whole(at: dt.datetime, parallel: bool, label: str) -> None:
            wall, results = run_all(
                {
                    k: (
                        lambda k=k: usage_service.collect_host(  # type: ignore[misc]
                            db, settings, host_ids[k], plugins, at
                        )
                    )
                    for k in hosts
                },
                parallel,
            )
            log(f"collect_host {label}: {wall:.2f}s (load {load()})")
            for kind, (seconds, report) in results.items():
                if not report.ok:
                    checks.append(f"collect_host {label} {kind}: {report.error}")
                rows.append(
                    Row(
                        f"collect_host {kind}",
                        seconds,
                        note=(
                            f"{label}; exec+parse {report.seconds:.2f}s, {report.samples} samples "
                            "stored"
                        ),
                    )
                )
            rows.append(
                Row(
                    f"collect_host, 3 hosts, {label}",
                    wall,
                    f"< {COLLECT_TARGET:.0f} s",
                    verdict(wall < COLLECT_TARGET),
                    f"load {load()}",
                )
            )

        at1 = T0 + dt.timedelta(hours=1)
        whole(at1, False, "sequential")
        _, req1 = stored(db, at1, "http_requests")
        _, bytes1 = stored(db, at1, "http_bytes")
        if (req1, bytes1) != (requests, sent):
            checks.append(
                f"first collection stored {req1} requests / {bytes1} bytes, "
                f"{requests} / {sent} written"
            )
        at2 = at1 + dt.timedelta(hours=1)
        whole(at2, True, "parallel, no new traffic")
        n2, req2 = stored(db, at2, "http_requests")
        _, bytes2 = stored(db, at2, "http_bytes")
        rows.append(
            Row(
                "second collection adds",
                float(req2),
                "0 requests",
                verdict(req2 == 0 and bytes2 == 0),
                f"{req2} requests, {bytes2} bytes over {n2} sites",
            )
        )
        if req2 or bytes2:
            checks.append(f"second collection added {req2} requests, {bytes2} bytes")
        # 3. known new traffic on some sites: exactly that is added
        some = [s.id for s in states["web"].sites][:: max(1, len(states["web"].sites) // 100)]
        more, more_sent = write_traffic(hosts["web"], some, 7, 23)
        at3 = at2 + dt.timedelta(hours=1)
        whole(at3, True, f"parallel, +{more} requests")
        _, req3 = stored(db, at3, "http_requests")
        _, bytes3 = stored(db, at3, "http_bytes")
        rows.append(
            Row(
                "third collection adds",
                float(req3),
                f"{more} requests",
                verdict((req3, bytes3) == (more, more_sent)),
                f"{req3} requests / {bytes3} bytes; {more_sent} bytes written",
            )
        )
        if (req3, bytes3) != (more, more_sent):
            checks.append(f"third collection: {req3}/{bytes3}, wanted {more}/{more_sent}")
        db.engine.dispose()
        for h in hosts.values():
            h.stop()


def verdict(ok: bool) -> str:
    return "PASS" if ok else "MISS"
