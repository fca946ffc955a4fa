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
import contextlib
import datetime as dt
import http.client
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import (
    VENV_BIN,
    chunks,
    free_port,
    fresh_postgres,
    log,
    panel_key,
    stop,
    wait_healthz,
)

import panel.models  # noqa: F401  (every table in the metadata)
from panel.core.db import Base, Database, make_engine
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.models import Host
from panel.hosts.reconcile import snapshot
from panel.mail.service import hash_mail_password
from panel.testhosts import Lab, TestHost
from panel.usage import service as usage_service
from panel.usage.models import UsageSample
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins
from provisioners.transport import Connection, Target
from provisioners.usage import Collection, collect

COLLECT_TARGET = 10.0  # s, one collection over the three hosts
API_TARGET = 0.100  # s, p95 of one account over a year, daily
BUDGET, MIN_REQUESTS = 60.0, 10  # per API case: stop after BUDGET s once MIN_REQUESTS ran
T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
LOG_DIR = "/var/log/konbit/web"
YEAR_FROM, YEAR_TO = dt.date(2025, 1, 1), dt.date(2026, 1, 1)


@dataclass(frozen=True)
class Sizes:
    sites: int
    mailboxes: int
    databases: int
    accounts: int
    log_lines: int  # per site with a log
    tables_per_db: int
    others: int  # API: other accounts with a year of samples


FULL = Sizes(2000, 10_000, 1000, 400, 50, 5, 300)
QUICK = Sizes(200, 1000, 100, 40, 50, 2, 30)


@dataclass
class Row:
    case: str
    seconds: float
    target: str = ""
    verdict: str = ""
    note: str = ""


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


# -- panel database: hosts, accounts, objects ------------------------------------------


def stamps() -> dict[str, Any]:
    return {"created_at": T0, "updated_at": T0, "version": 1}


def reconciled() -> dict[str, Any]:
    return {**stamps(), "status": "active", "status_reason": None}


def slug(a: int) -> str:
    return f"ub{a:05d}"


def dname(a: int) -> str:
    return f"{slug(a)}.bench.test"


def account_rows(n: int) -> list[dict[str, Any]]:
    """Accounts 1..n, each with the admin address of its own domain."""
    return [
        {
            "id": a,
            "slug": slug(a),
            "name": f"Account {a}",
            "email": f"admin@{dname(a)}",
            "status": "active",
            "quotas": {},
            **stamps(),
        }
        for a in range(1, n + 1)
    ]


def bulk(url: str, named: Sequence[tuple[str, Iterable[dict[str, Any]]]]) -> None:
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for name, rows in named:
                table = Base.metadata.tables[name]
                for batch in chunks(rows):
                    conn.execute(sa.insert(table), batch)
    finally:
        engine.dispose()


def seed_objects(url: str, sizes: Sizes, hosts: dict[str, TestHost]) -> None:
    """Hosts (their real addresses and pinned keys), accounts with one domain each, and
    sites, mailboxes and databases spread evenly over the accounts."""
    roles = {"web": ["web"], "mail": ["mail"], "db": ["db"]}
    settings = {
        "web": {"web_server": "nginx", "php_versions": ["8.2"]},
        "mail": {},
        "db": {"engines": ["mariadb"]},
    }
    host_rows = [
        {
            "id": i + 1,
            "name": h.name,
            "address": h.address,
            "ssh_port": 22,
            "ssh_user": "root",
            "host_key": h.host_key,
            "roles": roles[kind],
            "settings": settings[kind],
            "enabled": True,
            "health": "ok",
            "health_reason": None,
            "desired_generation": 1,
            "applied_generation": 0,
            **stamps(),
        }
        for i, (kind, h) in enumerate(hosts.items())
    ]
    host_id = {kind: i + 1 for i, kind in enumerate(hosts)}
    n = sizes.accounts
    accounts = account_rows(n)
    domains = [
        {"id": a, "account_id": a, "name": dname(a), **reconciled()} for a in range(1, n + 1)
    ]
    sites = (
        {
            "id": k,
            "account_id": (k - 1) % n + 1,
            "domain_id": (k - 1) % n + 1,
            "host_id": host_id["web"],
            "domain": f"s{(k - 1) // n}.{dname((k - 1) % n + 1)}",
            "document_root": f"www/s{(k - 1) // n}.{dname((k - 1) % n + 1)}",
            "php": None,
            "https": "off",
            "enabled": True,
            **reconciled(),
        }
        for k in range(1, sizes.sites + 1)
    )
    password = hash_mail_password("bench usage password")
    mailboxes = (
        {
            "id": k,
            "account_id": (k - 1) % n + 1,
            "domain_id": (k - 1) % n + 1,
            "host_id": host_id["mail"],
            "address": f"u{(k - 1) // n}@{dname((k - 1) % n + 1)}",
            "password_hash": password,
            "quota_mb": 1024,
            "enabled": True,
            **reconciled(),
        }
        for k in range(1, sizes.mailboxes + 1)
    )
    databases = (
        {
            "id": k,
            "account_id": (k - 1) % n + 1,
            "host_id": host_id["db"],
            "engine": "mariadb",
            "name": f"{slug((k - 1) % n + 1)}_d{(k - 1) // n}",
            **reconciled(),
        }
        for k in range(1, sizes.databases + 1)
    )
    bulk(
        url,
        [
            ("hosts", host_rows),
            ("accounts", accounts),
            ("domains", domains),
            ("sites", sites),
            ("mailboxes", mailboxes),
            ("databases", databases),
        ],
    )


# -- hosts: populate -------------------------------------------------------------------


def sh(host: TestHost, script: str, stdin: str | None = None, timeout: float = 900) -> str:
    result = host.exec(["sh", "-c", script], input=stdin, timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"on {host.name}: exit {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def log_line(rng: random.Random, sent: int) -> str:
    """One line in nginx's ``konbit`` format (templates/hosts/nginx/konbit.conf.j2)."""
    ip = f"198.51.100.{rng.randrange(1, 255)}"
    path = f"/page/{rng.randrange(1000)}.html"
    ua = "Mozilla/5.0 (X11; Linux x86_64) bench/1.0"
    return (
        f"{ip} - - [21/Nov/2026:23:{rng.randrange(60):02d}:{rng.randrange(60):02d} +0000] "
        f'"GET {path} HTTP/1.1" {rng.choice((200, 200, 200, 304, 404))} {sent} '
        f'"https://example.org/" "{ua}" {rng.randrange(300, 700)} 0.{rng.randrange(1000):03d}\n'
    )


def write_traffic(
    host: TestHost, site_ids: Sequence[int], lines: int, seed: int
) -> tuple[int, int]:
    """Append ``lines`` complete lines to each site's access log; (requests, bytes)."""
    rng = random.Random(seed)
    requests = sent_total = 0
    log_dir = host.path(LOG_DIR)
    log_dir.mkdir(parents=True, exist_ok=True)
    for site_id in site_ids:
        chunk = []
        for _ in range(lines):
            sent = rng.randrange(200, 60_000)
            chunk.append(log_line(rng, sent))
            sent_total += sent
        requests += lines
        with open(log_dir / f"site-{site_id}.access.log", "a") as f:
            f.write("".join(chunk))
    return requests, sent_total


def populate_web(host: TestHost, state: Any, sizes: Sizes) -> tuple[int, int, int]:
    """A 4 KiB..64 KiB file per document root; logs for nine sites in ten."""
    from provisioners.web import docroot

    rng = random.Random(7)
    files = 0
    for site in state.sites:
        root = host.path(docroot(site))
        root.mkdir(parents=True, exist_ok=True)
        (root / "bench.bin").write_bytes(b"k" * rng.randrange(4096, 65536))
        files += 1
    logged = [s.id for s in state.sites if s.id % 10]
    requests, sent = write_traffic(host, logged, sizes.log_lines, 11)
    return files, requests, sent


def populate_mail(host: TestHost, state: Any) -> int:
    """One mailbox in five: 3 messages in cur/, 2 in new/ (sizes in the names)."""
    from provisioners.mail import maildir

    count = 0
    for box in state.mailboxes:
        if box.id % 5:
            continue
        base = host.path(maildir(box))
        for sub, k in (("cur", 3), ("new", 2), ("tmp", 0)):
            d = base / sub
            d.mkdir(parents=True, exist_ok=True)
            for i in range(k):
                size = 2000 + 1000 * i + box.id
                suffix = ":2,S" if sub == "cur" else ""
                (d / f"1763700000.M{i}P{box.id}.db,S={size},W={size + 40}{suffix}").touch()
                count += 1
    return count


def populate_db(host: TestHost, state: Any, tables: int) -> int:
    sql = [
        f"CREATE TABLE IF NOT EXISTS `{d.name}`.`t{i}` "
        "(id INT PRIMARY KEY, v VARCHAR(200)) ENGINE=InnoDB;\n"
        for d in state.databases
        for i in range(tables)
    ]
    sh(host, "mariadb --batch", stdin="".join(sql), timeout=1800)
    return len(sql)


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


# -- the API over a year ---------------------------------------------------------------

TYPICAL = 1


def series(account: int, typical: bool) -> list[tuple[str, int, str]]:
    """(object_type, object_id, metric) of one account; object ids unique per account."""
    sites, boxes, dbs = (5, 10, 2) if typical else (1, 2, 1)
    base = account * 100
    out = [("account", account, "disk_bytes")]
    for i in range(sites):
        out += [("site", base + i, m) for m in ("site_bytes", "http_requests", "http_bytes")]
    for i in range(boxes):
        out += [("mailbox", base + i, m) for m in ("mail_bytes", "mail_messages")]
    out += [("database", base + i, "db_bytes") for i in range(dbs)]
    return out


def sample_rows(others: int) -> tuple[list[tuple[int, str, int, str]], int]:
    keys: list[tuple[int, str, int, str]] = []
    for a in range(1, others + 2):
        keys += [(a, t, o, m) for t, o, m in series(a, a == TYPICAL)]
    hours = int((YEAR_TO - YEAR_FROM).total_seconds() // 3600)
    return keys, hours


def value(metric: str, obj: int, hour: int) -> int:
    if metric == "http_requests":
        return (obj * 7 + hour * 13) % 500
    if metric == "http_bytes":
        return ((obj * 7 + hour * 13) % 500) * 20_000
    if metric == "mail_messages":
        return 100 + (obj + hour // 24) % 900
    return 50_000_000 + obj * 1_000 + hour * 4_096


def seed_samples(url: str, others: int) -> int:
    """A year of hourly samples, in time order (as collections write them), indexes built
    after the load (the same definitions as the model's)."""
    keys, hours = sample_rows(others)
    start = dt.datetime.combine(YEAR_FROM, dt.time(), tzinfo=dt.UTC)
    accounts = account_rows(others + 1)
    bulk(url, [("accounts", accounts)])
    indexes = [
        ("ix_usage_samples_account_metric_time", "account_id, metric, time"),
        ("ix_usage_samples_metric_time", "metric, time"),
    ]
    engine = make_engine(url)
    total = len(keys) * hours
    try:
        raw = engine.raw_connection()
        try:
            cur = raw.cursor()
            for name, _ in indexes:
                cur.execute(f"DROP INDEX {name}")
            cols = "account_id, object_type, object_id, metric, value, time"
            if url.startswith("sqlite"):
                cur.execute("PRAGMA synchronous=OFF")
                cur.execute("PRAGMA cache_size=-1000000")
                sql = f"INSERT INTO usage_samples ({cols}) VALUES (?, ?, ?, ?, ?, ?)"
                for h in range(hours):
                    when = (start + dt.timedelta(hours=h)).strftime("%Y-%m-%d %H:%M:%S.000000")
                    cur.executemany(
                        sql, [(a, t, o, m, value(m, o, h), when) for a, t, o, m in keys]
                    )
                    if h % 1000 == 999:
                        log(f"  {h + 1}/{hours} hours")
            else:
                with cur.copy(f"COPY usage_samples ({cols}) FROM STDIN") as copy:
                    for h in range(hours):
                        at = start + dt.timedelta(hours=h)
                        for a, t, o, m in keys:
                            copy.write_row((a, t, o, m, value(m, o, h), at))
                        if h % 1000 == 999:
                            log(f"  {h + 1}/{hours} hours")
            for name, columns in indexes:
                cur.execute(f"CREATE INDEX {name} ON usage_samples ({columns})")
            raw.commit()
        finally:
            raw.close()
        if engine.dialect.name == "postgresql":
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("VACUUM ANALYZE usage_samples"))
    finally:
        engine.dispose()
    return total


def billing_token(url: str) -> str:
    from panel.accounts import service

    db = Database(url)
    try:
        with db.session() as session:
            user = service.create_user(session, email="bench-billing@example.org", name="Billing")
            _, secret = service.create_token(
                session, None, user, name="bench", scopes=["billing"], expires_at=None
            )
            session.commit()
    finally:
        db.engine.dispose()
    return secret


@contextlib.contextmanager
def server(url: str, data_dir: Path, log_path: Path) -> Iterator[tuple[int, int]]:
    """``konbit serve`` in a subprocess, stopped by its pid on the way out."""
    port = free_port()
    env = {**os.environ, "KONBIT_DATA_DIR": str(data_dir), "KONBIT_DATABASE_URL": url}
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [str(VENV_BIN / "konbit"), "serve", "--port", str(port)],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthz(proc, f"http://127.0.0.1:{port}", log_path)
            yield port, proc.pid
        finally:
            stop([proc], 15)


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def time_requests(
    port: int, token: str, path: str, n: int, accept: str = "application/json"
) -> tuple[list[float], int, int]:
    """n sequential GETs on one keep-alive connection (3 untimed first; fewer than n when
    they outlast BUDGET); (seconds, items, body bytes)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {token}", "Accept": accept}
    times: list[float] = []
    items = size = 0
    deadline = time.monotonic() + BUDGET
    for i in range(n + 3):
        if i >= 3 + MIN_REQUESTS and time.monotonic() > deadline:
            break  # a slow case: enough requests for a p50 and a rough p95
        t = time.perf_counter()
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        body = resp.read()
        elapsed = time.perf_counter() - t
        if resp.status != 200:
            raise RuntimeError(f"GET {path}: {resp.status} {body[:300]!r}")
        if i >= 3:
            times.append(elapsed)
    conn.close()
    size = len(body)
    if accept == "application/json":
        items = len(json.loads(body)["items"])
    else:
        items = body.count(b"\n") - 1
    return times, items, size


def breakdown(url: str, detail: bool) -> dict[str, float]:
    """In-process: the aggregation's SQL alone (DBAPI), with SQLAlchemy's row decoding,
    and the whole ``service.aggregate`` (the rest is Python bucketing)."""
    start = dt.datetime.combine(YEAR_FROM, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(YEAR_TO, dt.time(), tzinfo=dt.UTC)
    metrics = sorted(usage_service.METRICS)
    objects: tuple[Any, ...] = (UsageSample.object_type, UsageSample.object_id) if detail else ()
    keys = (UsageSample.account_id, UsageSample.metric, UsageSample.time, *objects)
    query = (
        sa.select(*keys, sa.func.sum(UsageSample.value))
        .where(
            UsageSample.time >= start,
            UsageSample.time < end,
            UsageSample.metric.in_(metrics),
            UsageSample.account_id.in_([TYPICAL]),
        )
        .group_by(*keys)
    )
    db = Database(url)
    out: dict[str, float] = {}
    try:
        with db.session() as session:
            session.execute(query).all()  # warm
            compiled = query.compile(
                dialect=db.engine.dialect, compile_kwargs={"render_postcompile": True}
            )
            sql, params = str(compiled), compiled.params
            conn = session.connection()
            runs: dict[str, list[float]] = {"sql": [], "sql+decode": [], "aggregate": []}
            for _ in range(5):
                t = time.perf_counter()
                conn.exec_driver_sql(sql, _dbapi_params(db, compiled, params)).all()
                runs["sql"].append(time.perf_counter() - t)
                t = time.perf_counter()
                rows = session.execute(query).all()
                runs["sql+decode"].append(time.perf_counter() - t)
                t = time.perf_counter()
                usage_service.aggregate(
                    session, [TYPICAL], start, end, "day", metrics, detail=detail
                )
                runs["aggregate"].append(time.perf_counter() - t)
            out = {k: statistics.median(v) for k, v in runs.items()}
            out["grouped rows"] = float(len(rows))
    finally:
        db.engine.dispose()
    return out


def _dbapi_params(db: Database, compiled: Any, params: dict[str, Any]) -> Any:
    """Bind parameters as the DBAPI wants them (positional for SQLite)."""
    processors = compiled._bind_processors
    values = {k: processors[k](v) if k in processors else v for k, v in params.items()}
    if db.engine.dialect.paramstyle == "qmark":
        return tuple(values[k] for k in compiled.positiontup)
    return values


ROLLUP_DDL = """
CREATE TABLE bench_usage_daily (
    account_id INTEGER NOT NULL, metric VARCHAR(32) NOT NULL, day DATE NOT NULL,
    object_type VARCHAR(32) NOT NULL, object_id INTEGER NOT NULL,
    samples INTEGER NOT NULL, total BIGINT NOT NULL, peak BIGINT NOT NULL)
"""


def rollup(url: str) -> dict[str, float]:
    """Prototype of the proposed fix (bench-side table, not the panel's): one row per
    (account, metric, day) for the account level -- its collections' totals: count, sum,
    max -- and one per (object, metric, day) for detail.  Built from usage_samples here; in
    the panel the collection would upsert today's rows in its own transaction."""
    engine = make_engine(url)
    pg = engine.dialect.name == "postgresql"
    day = "(time AT TIME ZONE 'UTC')::date" if pg else "substr(time, 1, 10)"
    out: dict[str, float] = {}
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("DROP TABLE IF EXISTS bench_usage_daily"))
            conn.execute(sa.text(ROLLUP_DDL))
            t = time.perf_counter()
            conn.execute(
                sa.text(f"""
                INSERT INTO bench_usage_daily
                SELECT account_id, metric, {day}, '', 0, count(*), sum(v), max(v)
                  FROM (SELECT account_id, metric, time, sum(value) AS v FROM usage_samples
                        GROUP BY account_id, metric, time) per_collection
                 GROUP BY account_id, metric, {day}""")
            )
            conn.execute(
                sa.text(f"""
                INSERT INTO bench_usage_daily
                SELECT account_id, metric, {day}, object_type, object_id, count(*), sum(value),
                       max(value)
                  FROM usage_samples
                 GROUP BY account_id, metric, {day}, object_type, object_id""")
            )
            conn.execute(
                sa.text("CREATE INDEX ix_bench_usage_daily ON bench_usage_daily (account_id, day)")
            )
            out["build"] = time.perf_counter() - t
            out["rows"] = float(
                conn.execute(sa.text("SELECT count(*) FROM bench_usage_daily")).scalar_one()
            )
        if pg:
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(sa.text("ANALYZE bench_usage_daily"))
        q = sa.text(
            "SELECT account_id, day, metric, object_type, object_id, samples, total, peak "
            "FROM bench_usage_daily WHERE account_id = :a AND day >= :f AND day < :t "
            "AND object_type {} '' ORDER BY day, metric, object_type, object_id"
        )
        lo = YEAR_FROM if pg else YEAR_FROM.isoformat()
        hi = YEAR_TO if pg else YEAR_TO.isoformat()
        for label, op in (("day", "="), ("day detail", "<>")):
            times = []
            with engine.connect() as conn:
                for _ in range(20):
                    t = time.perf_counter()
                    items = [
                        {
                            "account_id": r[0],
                            "period": str(r[1]),
                            "metric": r[2],
                            "object_type": r[3] or None,
                            "object_id": r[4] or None,
                            "samples": r[5],
                            "sum": r[6],
                            "peak": r[7],
                            "average": round(r[6] / r[5]),
                        }
                        for r in conn.execute(
                            sa.text(q.text.format(op)), {"a": TYPICAL, "f": lo, "t": hi}
                        )
                    ]
                    json.dumps(items, default=str)
                    times.append(time.perf_counter() - t)
            out[label] = statistics.median(times)
            out[f"{label} rows"] = float(len(items))
    finally:
        engine.dispose()
    return out


def bench_api(
    work: Path, url: str | None, sizes: Sizes, n: int, rows: list[Row], use_rollup: bool
) -> None:
    data = work / "api"
    shutil.rmtree(data, ignore_errors=True)
    data.mkdir(parents=True)
    if url is None:
        url = f"sqlite:///{data / 'konbit.sqlite3'}"
    else:
        fresh_postgres(url)
    backend = "postgresql" if url.startswith("postgresql") else "sqlite"
    upgrade(url)
    t = time.perf_counter()
    total = seed_samples(url, sizes.others)
    log(f"{backend}: seeded {total:,} samples in {time.perf_counter() - t:.0f}s")
    # The panel's own daily rollup (the worker runs it hourly): finished days are then read
    # from usage_daily, today from the samples.
    from panel.core.db import Database
    from panel.usage.service import rollup_pending

    t = time.perf_counter()
    database = Database(url)
    with database.session() as session:
        days = rollup_pending(session)
        session.commit()
    database.engine.dispose()
    took = time.perf_counter() - t
    log(f"{backend}: rolled up {len(days)} days in {took:.1f}s")
    rows.append(Row(f"panel rollup of {len(days)} days [{backend}]", took))
    token = billing_token(url)
    path = f"/api/v1/usage?account_id={TYPICAL}&from={YEAR_FROM}&to={YEAR_TO}&granularity=day"
    note = f"{backend}, {total / 1e6:.1f}M samples, {sizes.others + 1} accounts"
    with server(url, data, data / "server.log") as (port, _pid):
        for label, suffix, accept in (
            ("day", "", "application/json"),
            ("day detail", "&detail=true", "application/json"),
            ("day CSV", "", "text/csv"),
        ):
            times, items, size = time_requests(port, token, path + suffix, n, accept)
            p50, p95 = percentile(times, 50), percentile(times, 95)
            log(f"API {label}: p50 {p50 * 1000:.0f} ms p95 {p95 * 1000:.0f} ms (load {load()})")
            rows.append(Row(f"API year {label} p50 [{backend}]", p50))
            rows.append(
                Row(
                    f"API year {label} p95 [{backend}]",
                    p95,
                    "< 100 ms",
                    verdict(p95 < API_TARGET),
                    f"{note}; {len(times)} requests, {items} rows, {size / 1024:.0f} KiB; "
                    f"load {load()}",
                )
            )
    for detail in (False, True):
        parts = breakdown(url, detail)
        label = "detail" if detail else "plain"
        rows.append(Row(f"  in-process {label}: SQL alone [{backend}]", parts["sql"]))
        rows.append(
            Row(
                f"  in-process {label}: SQL + row decode",
                parts["sql+decode"],
                note=f"{parts['grouped rows']:.0f} grouped rows",
            )
        )
        rows.append(
            Row(
                f"  in-process {label}: service.aggregate",
                parts["aggregate"],
                note="the rest: Python bucketing per period",
            )
        )
    if use_rollup:
        r = rollup(url)
        rows.append(
            Row(
                f"  rollup prototype: build [{backend}]",
                r["build"],
                note=f"{r['rows']:.0f} daily rows for the whole table",
            )
        )
        rows.append(
            Row(
                "  rollup prototype: year, day",
                r["day"],
                "< 100 ms",
                verdict(r["day"] < API_TARGET),
                f"{r['day rows']:.0f} rows, in-process",
            )
        )
        rows.append(
            Row(
                "  rollup prototype: year, detail",
                r["day detail"],
                "< 100 ms",
                verdict(r["day detail"] < API_TARGET),
                f"{r['day detail rows']:.0f} rows, in-process",
            )
        )


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
