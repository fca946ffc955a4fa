"""The api_lists bench's data: its sizes, the bulk-seeded panel database (accounts, sites,
users, tokens) and the cursor of a deep page."""

from __future__ import annotations

import argparse
import base64
import datetime as dt
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from common import chunks, fresh_postgres, log
from sqlalchemy import Table, delete, func, insert, select, text
from sqlalchemy.engine import make_url

T0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)


ADMIN_EMAIL = "bench-admin@example.org"


MEMBER_EMAIL = "bench-member@example.org"


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
