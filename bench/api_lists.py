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
import asyncio
import base64
import contextlib
import cProfile
import datetime as dt
import gc
import io
import json
import os
import pstats
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import VENV_BIN, chunks, free_port, fresh_postgres, log, stop, wait_healthz
from sqlalchemy import Table, delete, event, func, insert, select, text
from sqlalchemy.engine import make_url

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
ADMIN_EMAIL = "bench-admin@example.org"
MEMBER_EMAIL = "bench-member@example.org"
TARGET_RATIO = 3.0
STALL_MS = 10_000
REFERENCE = {"users-me"}  # measured and shown, but not one of the requests the target covers


@dataclass(frozen=True)
class Scale:
    accounts: int
    sites_per_account: int
    extras: int  # accounts that also get a mailbox, alias, list, databases and a db user
    requests_c1: int
    requests_c20: int
    max_seconds: int  # per measured case

    @property
    def sites(self) -> int:
        return self.accounts * self.sites_per_account


FULL = Scale(
    accounts=20_000,
    sites_per_account=5,
    extras=300,
    requests_c1=400,
    requests_c20=2_000,
    max_seconds=120,
)
QUICK = Scale(
    accounts=2_000,
    sites_per_account=5,
    extras=250,
    requests_c1=100,
    requests_c20=400,
    max_seconds=20,
)


@dataclass
class Seeded:
    url: str
    accounts: int
    first_site: int
    last_site: int
    member_account: int
    member_slug: str
    admin_token: str = ""
    member_token: str = ""


# --------------------------------------------------------------------------- database


def slug(a: int) -> str:
    return f"acct{a:05d}"


def dname(a: int) -> str:
    return f"{slug(a)}.example.org"


def stamps(i: int) -> dict[str, Any]:
    ts = T0 + dt.timedelta(seconds=i)
    return {"created_at": ts, "updated_at": ts, "version": 1}


def reconciled(i: int) -> dict[str, Any]:
    return {**stamps(i), "status": "active", "status_reason": None}


def is_seeded(url: str, scale: Scale) -> bool:
    from panel.accounts.models import Account, User
    from panel.core.db import make_engine
    from panel.sites.models import Site

    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            accounts = conn.scalar(select(func.count()).select_from(Account))
            sites = conn.scalar(select(func.count()).select_from(Site))
            admin = conn.scalar(select(User.id).where(User.email == ADMIN_EMAIL))
        return accounts == scale.accounts and sites == scale.sites and admin is not None
    except Exception:
        return False
    finally:
        engine.dispose()


def seed(url: str, scale: Scale) -> None:
    """Bulk-insert everything with explicit ids (core insert, executemany per batch)."""
    import panel.models  # noqa: F401  (every table in the metadata)
    from panel.core.db import Base, make_engine

    web_hosts = [1, 2, 3, 4]
    mail_host, db_host, lists_host = 5, 6, 7
    kind = b"ssh-ed25519"
    blob = len(kind).to_bytes(4, "big") + kind + (32).to_bytes(4, "big") + bytes(range(32))
    key = f"ssh-ed25519 {base64.b64encode(blob).decode()}"
    hosts = [
        {"id": i, "name": f"web{i}", "roles": ["web"], "settings": {"php_versions": ["8.2", "8.3"]}}
        for i in web_hosts
    ] + [
        {"id": mail_host, "name": "mail1", "roles": ["mail"], "settings": {}},
        {"id": db_host, "name": "db1", "roles": ["db"], "settings": {}},
        {"id": lists_host, "name": "lists1", "roles": ["lists"], "settings": {}},
    ]
    for h in hosts:
        h.update(
            address=f"{h['name']}.bench.invalid",
            ssh_port=22,
            ssh_user="root",
            host_key=key,
            enabled=True,
            health="ok",
            health_reason=None,
            desired_generation=1,
            applied_generation=1,
            **stamps(0),
        )

    n_acc, n_sites = scale.accounts, scale.sites
    accounts = (
        {
            "id": a,
            "slug": slug(a),
            "name": f"Account {a}",
            "email": f"admin@{dname(a)}",
            "status": "active",
            "quotas": {},
            **stamps(a),
        }
        for a in range(1, n_acc + 1)
    )
    domains = (
        {"id": a, "account_id": a, "name": dname(a), **reconciled(a)} for a in range(1, n_acc + 1)
    )

    def site_parts(k: int) -> tuple[int, str]:
        # Site k belongs to account (k-1) % accounts + 1: its sites spread over the table.
        a = (k - 1) % n_acc + 1
        return a, f"s{(k - 1) // n_acc}.{dname(a)}"

    def sites() -> Iterator[dict[str, Any]]:
        for k in range(1, n_sites + 1):
            a, name = site_parts(k)
            yield {
                "id": k,
                "account_id": a,
                "domain_id": a,
                "host_id": web_hosts[k % 4],
                "domain": name,
                "document_root": f"www/{name}",
                "php": "8.2" if k % 3 else None,
                "https": "acme" if k % 2 else "off",
                "enabled": True,
                **reconciled(k),
            }

    def aliases() -> Iterator[dict[str, Any]]:
        # 1 in 5 sites has one alias, 1 in 5 has two, evenly spread over every page.
        for k in range(1, n_sites + 1):
            a, name = site_parts(k)
            for prefix in ("www", "alt")[: {0: 1, 1: 2}.get(k % 5, 0)]:
                yield {"site_id": k, "domain_id": a, "name": f"{prefix}.{name}"}

    extra = range(1, min(scale.extras, n_acc) + 1)
    mailboxes = (
        {
            "id": a,
            "account_id": a,
            "domain_id": a,
            "host_id": mail_host,
            "address": f"user@{dname(a)}",
            "password_hash": "{BLF-CRYPT}$2y$05$bench",
            "quota_mb": 1024,
            "enabled": True,
            **reconciled(a),
        }
        for a in extra
    )
    mail_aliases = (
        {
            "id": a,
            "account_id": a,
            "domain_id": a,
            "host_id": mail_host,
            "address": f"info@{dname(a)}",
            "destinations": [f"user@{dname(a)}"],
            **reconciled(a),
        }
        for a in extra
    )
    lists = (
        {
            "id": a,
            "account_id": a,
            "domain_id": a,
            "host_id": lists_host,
            "address": f"news@{dname(a)}",
            "owners": [f"user@{dname(a)}"],
            "policy": "confirm",
            **reconciled(a),
        }
        for a in extra
    )
    databases = (
        {
            "id": 2 * a - i,
            "account_id": a,
            "host_id": db_host,
            "engine": "mariadb",
            "name": f"{slug(a)}_{suffix}",
            **reconciled(a),
        }
        for a in extra
        for i, suffix in ((1, "main"), (0, "wp"))
    )
    db_users = (
        {
            "id": a,
            "account_id": a,
            "host_id": db_host,
            "engine": "mariadb",
            "name": f"{slug(a)}_u",
            "password_hash": "*BENCHBENCHBENCH",
            **reconciled(a),
        }
        for a in extra
    )
    grants = ({"user_id": a, "database_id": 2 * a - i} for a in extra for i in (1, 0))

    named: list[tuple[str, Iterable[dict[str, Any]]]] = [
        ("hosts", hosts),
        ("accounts", accounts),
        ("domains", domains),
        ("sites", sites()),
        ("site_aliases", aliases()),
        ("mailboxes", mailboxes),
        ("mail_aliases", mail_aliases),
        ("mailing_lists", lists),
        ("databases", databases),
        ("database_users", db_users),
        ("database_grants", grants),
    ]
    tables: list[tuple[Table, Iterable[dict[str, Any]]]] = [
        (Base.metadata.tables[name], rows) for name, rows in named
    ]
    engine = make_engine(url)
    try:
        with engine.begin() as conn:
            for table, rows in tables:
                t = time.perf_counter()
                n = 0
                for batch in chunks(rows):
                    conn.execute(insert(table), batch)
                    n += len(batch)
                log(f"  {table.name}: {n} rows in {time.perf_counter() - t:.1f}s")
        if engine.dialect.name == "postgresql":
            with engine.begin() as conn:  # explicit ids: move the sequences past them
                for table, _ in tables:
                    if "id" in table.c:
                        conn.execute(
                            text(
                                f"SELECT setval(pg_get_serial_sequence('{table.name}', 'id'), "
                                f"(SELECT coalesce(max(id), 1) FROM {table.name}))"
                            )
                        )
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.execute(text("VACUUM ANALYZE"))  # what autovacuum would soon do
        # SQLite is left without ANALYZE, as the panel leaves it.
    finally:
        engine.dispose()


def prepare(args: argparse.Namespace, scale: Scale) -> Seeded:
    from panel.core.migrate import upgrade

    if args.database_url:
        url = args.database_url
    else:
        data_dir = Path(args.data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{data_dir / 'konbit.sqlite3'}"
    if args.reuse and is_seeded(url, scale):
        log(f"reusing the seeded database {make_url(url).render_as_string()}")
        upgrade(url)  # the schema may have moved on since it was seeded
    else:
        log(f"seeding {scale.accounts} accounts, {scale.sites} sites into {url}")
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(str(make_url(url).database) + suffix).unlink(missing_ok=True)
        else:
            fresh_postgres(url)
        t = time.perf_counter()
        upgrade(url)
        seed(url, scale)
        make_users(url, scale)
        log(f"seeded in {time.perf_counter() - t:.1f}s")
    return mint_tokens(url, scale)


def make_users(url: str, scale: Scale) -> None:
    from panel.accounts import service
    from panel.accounts.models import Membership
    from panel.core.db import Database

    member_account = scale.accounts // 2
    db = Database(url)
    with db.session() as session:
        service.create_user(session, email=ADMIN_EMAIL, name="Bench admin", is_staff=True)
        member = service.create_user(session, email=MEMBER_EMAIL, name="Bench member")
        session.add(Membership(account_id=member_account, user_id=member.id, role="owner"))
        session.commit()
    db.engine.dispose()


def mint_tokens(url: str, scale: Scale) -> Seeded:
    """Fresh tokens on every run (only hashes are stored); the previous run's are deleted."""
    import panel.models  # noqa: F401
    from panel.accounts import service
    from panel.accounts.models import Account, ApiToken, Membership, User
    from panel.core.db import Database
    from panel.sites.models import Site

    db = Database(url)
    stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d%H%M%S%f")
    with db.session() as session:
        admin = session.scalars(select(User).where(User.email == ADMIN_EMAIL)).one()
        member = session.scalars(select(User).where(User.email == MEMBER_EMAIL)).one()
        session.execute(delete(ApiToken).where(ApiToken.user_id.in_([admin.id, member.id])))
        account_id, account_slug = session.execute(
            select(Account.id, Account.slug)
            .join(Membership, Membership.account_id == Account.id)
            .where(Membership.user_id == member.id)
        ).one()
        lo, hi = session.execute(select(func.min(Site.id), func.max(Site.id))).one()
        _, admin_secret = service.create_token(
            session, None, admin, name=f"bench-{stamp}", scopes=["admin"], expires_at=None
        )
        _, member_secret = service.create_token(
            session,
            None,
            member,
            name=f"bench-{stamp}",
            scopes=[f"account:{account_slug}"],
            expires_at=None,
        )
        session.commit()
    db.engine.dispose()
    return Seeded(
        url=url,
        accounts=scale.accounts,
        first_site=lo,
        last_site=hi,
        member_account=account_id,
        member_slug=account_slug,
        admin_token=admin_secret,
        member_token=member_secret,
    )


def cursor_after(site_id: int) -> str:
    """The cursor format of panel/core/pagination.py: base64url JSON, no padding."""
    raw = json.dumps({"after": site_id}).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # "{rand}" is replaced per request by a random int in [lo, hi]
    token: str | None
    lo: int = 0
    hi: int = 0
    expect_items: int | None = None


def cases(s: Seeded) -> list[Case]:
    deep = cursor_after(s.last_site - 60)  # a full page (and a next cursor) near the end
    return [
        Case("healthz", "/healthz", None),
        # Reference, not judged: the cheapest authenticated request (token lookup, no query).
        Case("users-me", "/api/v1/users/me", s.admin_token),
        Case("sites-first", "/api/v1/sites?limit=50", s.admin_token, expect_items=50),
        Case("sites-deep", f"/api/v1/sites?limit=50&cursor={deep}", s.admin_token, expect_items=50),
        Case(
            "sites-by-account",
            "/api/v1/sites?limit=50&account_id={rand}",
            s.admin_token,
            1,
            s.accounts,
            expect_items=s.last_site // s.accounts,
        ),
        Case(
            "sites-member",
            f"/api/v1/sites?limit=50&account_id={s.member_account}",
            s.member_token,
            expect_items=s.last_site // s.accounts,
        ),
        Case("site-get", "/api/v1/sites/{rand}", s.admin_token, s.first_site, s.last_site),
    ]


def expand(case: Case, rand: int | None = None) -> str:
    if "{rand}" not in case.path:
        return case.path
    return case.path.replace("{rand}", str(rand if rand is not None else case.lo))


def check_case(base: str, case: Case) -> None:
    """One request by hand: 200 and the expected number of items, before timing anything."""
    req = urllib.request.Request(base + expand(case))
    if case.token:
        req.add_header("Authorization", f"Bearer {case.token}")
    with urllib.request.urlopen(req, timeout=30) as resp:  # only ever 127.0.0.1
        body = json.loads(resp.read())
        assert resp.status == 200, (case.name, resp.status)
    if case.expect_items is not None:
        got = len(body["items"])
        assert got == case.expect_items, f"{case.name}: {got} items, not {case.expect_items}"


# --------------------------------------------------------------------------- load

WRK_LUA = r"""
local token, path, lo, hi, limit
local count = 0
function init(args)
  token, path, limit = args[1], args[2], tonumber(args[3])
  lo, hi = tonumber(args[4]), tonumber(args[5])
  if token ~= "-" then wrk.headers["Authorization"] = "Bearer " .. token end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local p = path
  if hi > 0 then p = string.gsub(path, "{rand}", tostring(math.random(lo, hi))) end
  return wrk.format("GET", p)
end
function response(status, headers, body)
  count = count + 1
  if count == limit then
    io.write("BENCHSTOP\n")  -- wrk sleeps out -d; the runner interrupts it on this line
    io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Result:
    case: str
    conc: int
    requests: int
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int
    bg_pct: float = 0.0  # share of the machine's CPU used by other processes meanwhile


def run_wrk(base: str, case: Case, conc: int, n: int, max_s: int, lua: Path) -> Result:
    """wrk with one thread; stopped (SIGINT, as wrk expects) once ``n`` responses are in."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{max_s}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        base + "/",
        "--",
        case.token or "-",
        case.path,
        str(n),
        str(case.lo),
        str(case.hi),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("BENCHSTOP"):
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = [x for x in lines if x.startswith("BENCHJSON ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError("wrk said:\n" + "".join(lines))
    d = json.loads(found[0].removeprefix("BENCHJSON "))
    return Result(
        case.name,
        conc,
        d["requests"],
        d["p50_us"] / 1e3,
        d["p99_us"] / 1e3,
        d["requests"] / (d["duration_us"] / 1e6),
        d["errors"],
    )


def percentile(sorted_values: list[float], p: float) -> float:
    idx = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[idx]


def run_python(base: str, case: Case, conc: int, n: int, max_s: int) -> Result:
    import random

    import httpx2

    async def main() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        left = n
        deadline = time.perf_counter() + max_s
        headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
        limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx2.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=30
        ) as client:

            async def worker() -> None:
                nonlocal left, errors
                while left > 0 and time.perf_counter() < deadline:
                    left -= 1
                    path = expand(case, random.randint(case.lo, case.hi) if case.hi else None)
                    t = time.perf_counter()
                    r = await client.get(path)
                    latencies.append(time.perf_counter() - t)
                    errors += r.status_code != 200

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return latencies, errors, time.perf_counter() - start

    lat, errors, took = asyncio.run(main())
    lat.sort()
    return Result(
        case.name,
        conc,
        len(lat),
        percentile(lat, 50) * 1e3,
        percentile(lat, 99) * 1e3,
        len(lat) / took,
        errors,
    )


@contextlib.contextmanager
def server(url: str, data_dir: Path, log_path: Path) -> Iterator[tuple[str, int]]:
    """``konbit serve`` in a subprocess; always stopped (by its pid) on the way out."""
    port = free_port()
    env = {**os.environ, "KONBIT_DATA_DIR": str(data_dir)}
    if url.startswith("sqlite"):
        env.pop("KONBIT_DATABASE_URL", None)
    else:
        env["KONBIT_DATABASE_URL"] = url
    base = f"http://127.0.0.1:{port}"
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [str(VENV_BIN / "konbit"), "serve", "--port", str(port)],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthz(proc, base, log_path)
            log(f"server pid {proc.pid} on {base}")
            yield base, proc.pid
        finally:
            stop([proc], 15)
            log(f"server stopped (exit {proc.returncode})")


TICK = os.sysconf("SC_CLK_TCK")


def _proc_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class CpuMeter:
    """How much CPU other processes (not the server, its database backends, wrk or this
    script) took while one case ran: the machine is shared, so say when a number is noisy."""

    def __init__(self, server_pid: int, pg_database: str | None) -> None:
        self.server_pid = server_pid
        self.pg_database = pg_database

    def _sut_ticks(self) -> int:
        total = _proc_ticks(self.server_pid)
        if self.pg_database:  # backends are titled "postgres: user db addr state"
            marker = f" {self.pg_database} ".encode()
            for d in Path("/proc").iterdir():
                if d.name.isdigit():
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        cmd = (d / "cmdline").read_bytes()
                        if cmd.startswith(b"postgres:") and marker in cmd:
                            total += _proc_ticks(int(d.name))
        return total

    @staticmethod
    def _busy_ticks() -> int:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal

    @staticmethod
    def _ours() -> float:
        import resource

        a, b = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[float]]:
        out: list[float] = []
        t, busy, sut, ours = time.monotonic(), self._busy_ticks(), self._sut_ticks(), self._ours()
        yield out
        wall = time.monotonic() - t
        other = ((self._busy_ticks() - busy) - (self._sut_ticks() - sut)) / TICK
        other -= self._ours() - ours
        out.append(max(0.0, 100 * other / (wall * (os.cpu_count() or 1))))


def measure(
    s: Seeded, scale: Scale, data_dir: Path, client: str, log_path: Path, stress: list[int]
) -> tuple[list[Result], list[Result]]:
    results: list[Result] = []
    stressed: list[Result] = []
    pg_db = None if s.url.startswith("sqlite") else make_url(s.url).database
    with tempfile.TemporaryDirectory() as tmp, server(s.url, data_dir, log_path) as (base, pid):
        lua = Path(tmp) / "bench.lua"
        lua.write_text(WRK_LUA)
        meter = CpuMeter(pid, pg_db)

        def run(case: Case, conc: int, n: int, max_s: int) -> Result:
            with meter.measure() as bg:
                if client == "wrk":
                    r = run_wrk(base, case, conc, n, max_s, lua)
                else:
                    r = run_python(base, case, conc, n, max_s)
            r.bg_pct = bg[0]
            return r

        all_cases = cases(s)
        for case in all_cases:
            check_case(base, case)
            run(case, 4, 50, 10)  # warm-up: imports, caches, pool connections
        for conc, n in ((1, scale.requests_c1), (20, scale.requests_c20)):
            for case in all_cases:
                r = run(case, conc, n, scale.max_seconds)
                log(
                    f"  c={conc:<2} {case.name:<17} n={r.requests:<5} p50={r.p50_ms:7.2f}ms "
                    f"p99={r.p99_ms:7.2f}ms {r.rps:7.0f} req/s errors={r.errors} "
                    f"other CPU {r.bg_pct:.0f}%"
                )
                results.append(r)
        first = next(c for c in all_cases if c.name == "sites-first")
        for conc in stress:  # many clients: does the server stay up, or stall on its pools?
            r = run(first, conc, max(1_000, 10 * conc), 60)
            log(f"  stress c={conc} n={r.requests} p99={r.p99_ms:.0f}ms errors={r.errors}")
            stressed.append(r)
    return results, stressed


def judged(results: list[Result]) -> list[tuple[Result, float, float, str]]:
    """Each result with its p50 and p99 ratios to /healthz at the same concurrency."""
    hz = {r.conc: r for r in results if r.case == "healthz"}
    out = []
    for r in results:
        q50, q99 = r.p50_ms / hz[r.conc].p50_ms, r.p99_ms / hz[r.conc].p99_ms
        verdict = (
            "-"
            if r.case == "healthz"
            else "ref"
            if r.case in REFERENCE
            else "PASS"
            if max(q50, q99) <= TARGET_RATIO and not r.errors
            else "MISS"
        )
        out.append((r, q50, q99, verdict))
    return out


def table(rows: list[tuple[Result, float, float, str]]) -> str:
    head = (
        f"{'case':<17} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} "
        f"{'p50/hz':>7} {'p99/hz':>7} {'err':>4} {'bg%':>4}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r, q50, q99, verdict in rows:
        lines.append(
            f"{r.case:<17} {r.conc:>4} {r.requests:>5} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.rps:>7.0f} {q50:>7.2f} {q99:>7.2f} {r.errors:>4} "
            f"{r.bg_pct:>4.0f}  {verdict}"
        )
    return "\n".join(lines)


# --------------------------------------------------------------------------- in-process


@contextlib.contextmanager
def in_process(s: Seeded, data_dir: Path) -> Iterator[tuple[Any, list[str]]]:
    """A TestClient on the real app and the list the engine appends each statement to."""
    from starlette.testclient import TestClient

    from panel.app import create_app
    from panel.core.db import Database
    from panel.core.settings import Settings

    db = Database(s.url)
    statements: list[str] = []

    def _record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", _record)
    app = create_app(Settings(database_url=s.url, data_dir=data_dir), db)
    try:
        with TestClient(app, raise_server_exceptions=True) as client:
            yield client, statements
    finally:
        db.engine.dispose()


def count_queries(s: Seeded, data_dir: Path) -> bool:
    lists = [
        "sites",
        "domains",
        "accounts",
        "mailboxes",
        "mail-aliases",
        "lists",
        "databases",
        "database-users",
        "hosts",
        "users",
        "tokens",
        "audit-events",
        "applies",
    ]
    endpoints = [(f"/api/v1/{p}", s.admin_token, "admin") for p in lists]
    endpoints.insert(1, ("/api/v1/sites", s.member_token, "member"))
    limits = (10, 50, 200)
    ok = True
    head = f"{'endpoint':<24} {'as':<6} " + " ".join(f"{'rows/sql@' + str(n):>13}" for n in limits)
    print(head + "  verdict")
    print("-" * (len(head) + 9))
    with in_process(s, data_dir) as (client, statements):
        for path, token, who in endpoints:
            headers = {"Authorization": f"Bearer {token}"}
            client.get(path, params={"limit": 1}, headers=headers)  # warm: last_used_at update
            cells: list[tuple[int, int]] = []
            trace: list[str] = []
            for limit in limits:
                statements.clear()
                r = client.get(path, params={"limit": limit}, headers=headers)
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                cells.append((len(r.json()["items"]), len(statements)))
                trace = list(statements)
            counts = {c for _, c in cells}
            rows_grew = cells[-1][0] > cells[0][0]
            verdict = ("flat" if len(counts) == 1 else "GROWS") + (
                "" if rows_grew else " (too few rows to tell)"
            )
            if len(counts) > 1:
                ok = False
            print(
                f"{path.removeprefix('/api/v1/'):<24} {who:<6} "
                + " ".join(f"{f'{n}/{c}':>13}" for n, c in cells)
                + f"  {verdict}"
            )
            if len(counts) > 1:
                for st in trace[:6]:
                    print("      " + " ".join(st.split())[:150])
    return ok


def profile(s: Seeded, data_dir: Path, name: str, n: int) -> None:
    """cProfile ``n`` requests of one case through the real app, all on one thread.

    FastAPI runs sync routes and dependencies in a thread pool, which cProfile does not see;
    here they run inline (``anyio.to_thread.run_sync`` patched) and the ASGI app is called
    through httpx2's ASGITransport, so the profile holds every step of a request."""
    import random

    import anyio.to_thread
    import httpx2

    from panel.app import create_app
    from panel.core.db import Database
    from panel.core.settings import Settings

    async def inline(func: Any, *args: Any, **_kw: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    case = next(c for c in cases(s) if c.name == name)
    headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
    db = Database(s.url)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    app = create_app(Settings(database_url=s.url, data_dir=data_dir), db)

    def path() -> str:
        return expand(case, random.randint(case.lo, case.hi) if case.hi else None)

    async def run() -> tuple[cProfile.Profile, float]:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(30):
                assert (await client.get(path(), headers=headers)).status_code == 200
            statements.clear()
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            for _ in range(n):
                await client.get(path(), headers=headers)
            prof.disable()
            return prof, time.perf_counter() - t

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1e3))

    gc.callbacks.append(on_gc)
    try:
        prof, took = asyncio.run(run())
    finally:
        gc.callbacks.remove(on_gc)
    db.engine.dispose()
    out = data_dir / f"profile-{name}.pstats"
    prof.dump_stats(out)
    log(f"profile saved to {out} (python -m pstats {out})")
    print(
        f"\nprofile {name}: {n} requests in-process on one thread, "
        f"{took / n * 1e3:.2f} ms each under cProfile, {len(statements) / n:.1f} SQL each"
    )
    for gen in (0, 1, 2):
        ms = [d for g, d in pauses if g == gen]
        if ms:
            print(
                f"gc generation {gen}: {len(ms)} collections, max {max(ms):.1f} ms, "
                f"total {sum(ms):.1f} ms"
            )
    print(
        f"objects tracked by the gc: {len(gc.get_objects())} (gc.freeze() takes them out "
        "of full collections)"
    )
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(30)
        print(buf.getvalue())


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
