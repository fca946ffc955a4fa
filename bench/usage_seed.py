"""The usage bench's data: its sizes, the three hosts' objects bulk-inserted into the panel
database, and the hosts filled through their root file systems (files, access logs,
Maildir messages, InnoDB tables)."""

from __future__ import annotations

import datetime as dt
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from common import chunks

import panel.models  # noqa: F401  (every table in the metadata)
from panel.core.db import Base, make_engine
from panel.mail.service import hash_mail_password
from panel.testhosts import TestHost

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


LOG_DIR = "/var/log/konbit/web"


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
