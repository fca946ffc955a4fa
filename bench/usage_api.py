"""The usage bench's API over a year: a year of hourly samples, ``konbit serve`` timed over
one keep-alive connection, the in-process split and the daily rollup prototype."""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import shutil
import statistics
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import fresh_postgres, konbit_serve, log
from usage_collect import verdict
from usage_seed import Row, Sizes, account_rows, bulk, load

import panel.models  # noqa: F401  (every table in the metadata)
from panel.core.db import Database, make_engine
from panel.core.migrate import upgrade
from panel.usage import service as usage_service
from panel.usage.models import UsageSample

API_TARGET = 0.100  # s, p95 of one account over a year, daily


BUDGET, MIN_REQUESTS = 60.0, 10  # per API case: stop after BUDGET s once MIN_REQUESTS ran


YEAR_FROM, YEAR_TO = dt.date(2025, 1, 1), dt.date(2026, 1, 1)


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
    with konbit_serve(data_dir, log_path, url) as (port, proc):
        yield port, proc.pid


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
