"""A member's databases on a real db host, reached as the member's application would: over
TCP with PyMySQL and psycopg, as the database user the panel made (never as an admin)."""

from __future__ import annotations

import gzip
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest

from panel.testhosts import TestHost
from tests.integration.conftest import Panel
from tests.integration.dbtools import database as _database
from tests.integration.dbtools import my as _my
from tests.integration.dbtools import pg as _pg
from tests.integration.dbtools import sql as _sql
from tests.integration.dbtools import user as _user

pytestmark = pytest.mark.integration


def _account(panel: Panel, slug: str) -> dict[str, Any]:
    return panel.world.account(slug)  # type: ignore[no-any-return]


def _applied(panel: Panel, host_id: int) -> None:
    report = panel.reconcile(host_id)
    assert report.result == "applied", report.error


def _assert_active(panel: Panel, db: dict[str, Any], user: dict[str, Any]) -> None:
    assert panel.staff.ok("GET", f"/databases/{db['id']}")["status"] == "active"
    assert panel.staff.ok("GET", f"/database-users/{user['id']}")["status"] == "active"


def _my_refused(host: TestHost, user: str, password: str, db: str | None) -> str:
    with pytest.raises(pymysql.err.OperationalError) as caught:
        _my(host, user, password, db).close()
    return str(caught.value)


def _pg_refused(host: TestHost, user: str, password: str, db: str) -> str:
    with pytest.raises(psycopg.OperationalError) as caught:
        _pg(host, user, password, db).close()
    return str(caught.value)


def _pid(host: TestHost, path: str) -> str:
    return Path(host.path(path)).read_text().split()[0]


@pytest.fixture
def db_host(panel: Panel, db1: TestHost) -> Iterator[int]:
    host = panel.register(db1, roles=["db"])
    yield int(host["id"])


def test_mariadb_database_user_grants_and_passwords(
    panel: Panel, db1: TestHost, db_host: int
) -> None:
    acme, beta = _account(panel, "acme"), _account(panel, "beta")
    db = _database(panel, acme, "acme_shop", "mariadb")
    user = _user(panel, acme, "acme_web", "first pass 1", ["acme_shop"], "mariadb")
    _database(panel, beta, "beta_blog", "mariadb")
    _user(panel, beta, "beta_web", "beta pass 1", ["beta_blog"], "mariadb")
    _applied(panel, db_host)
    _assert_active(panel, db, user)

    with _my(db1, "acme_web", "first pass 1", "acme_shop") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE item (id INT PRIMARY KEY, label VARCHAR(40))")
        cur.execute("INSERT INTO item VALUES (1, %s)", ("café ☕",))
        cur.execute("SELECT label FROM item WHERE id = 1")
        assert cur.fetchone() == ("café ☕",)
    # Another account's user cannot reach it, not even knowing its name.
    assert "Access denied" in _my_refused(db1, "beta_web", "beta pass 1", "acme_shop")
    with _my(db1, "beta_web", "beta pass 1", None) as conn, conn.cursor() as cur:
        cur.execute("SHOW DATABASES")
        assert {r[0] for r in cur.fetchall()} == {"beta_blog", "information_schema"}

    mariadb_pid = _pid(db1, "/run/mysqld/mysqld.pid")
    again = panel.reconcile(db_host)
    assert again.result == "noop", again.error

    # Revoking in the panel revokes on the host.
    panel.staff.ok("PATCH", f"/database-users/{user['id']}", json={"databases": []})
    _applied(panel, db_host)
    assert "Access denied" in _my_refused(db1, "acme_web", "first pass 1", "acme_shop")
    panel.staff.ok("PATCH", f"/database-users/{user['id']}", json={"databases": ["acme_shop"]})
    _applied(panel, db_host)
    _my(db1, "acme_web", "first pass 1", "acme_shop").close()

    # A new password works at once; the old one is refused.
    panel.staff.ok("PATCH", f"/database-users/{user['id']}", json={"password": "second pass 2"})
    _applied(panel, db_host)
    assert "Access denied" in _my_refused(db1, "acme_web", "first pass 1", "acme_shop")
    with _my(db1, "acme_web", "second pass 2", "acme_shop") as conn, conn.cursor() as cur:
        cur.execute("SELECT COUNT(*) FROM item")
        assert cur.fetchone() == (1,)
    # Nothing in the panel touched the server's configuration: no restart.
    assert _pid(db1, "/run/mysqld/mysqld.pid") == mariadb_pid

    # A grant made by hand is drift: the next reconcile takes it back.
    _sql(db1, "mariadb", "GRANT SELECT ON `beta\\_blog`.* TO 'acme_web'@'%';")
    plan = panel.staff.ok("GET", f"/hosts/{db_host}/plan")
    assert "update mariadb user acme_web" in plan["diff"]
    _applied(panel, db_host)
    assert "Access denied" in _my_refused(db1, "acme_web", "second pass 2", "beta_blog")


def test_mariadb_grant_wildcards_are_escaped(panel: Panel, db1: TestHost, db_host: int) -> None:
    """In a MariaDB grant ``_`` matches any character: ``acme_shop`` unescaped would also
    grant ``acmeXshop``.  The panel cannot make that name, so it is made by hand."""
    wild = _account(panel, "wild")
    _database(panel, wild, "wild_shop", "mariadb")
    _user(panel, wild, "wild_app", "wild pass 1", ["wild_shop"], "mariadb")
    _sql(db1, "mariadb", "CREATE DATABASE wildXshop; CREATE TABLE wildXshop.secret (s TEXT);")
    _sql(db1, "mariadb", "INSERT INTO wildXshop.secret VALUES ('not yours');")
    _applied(panel, db_host)
    stored = _sql(db1, "mariadb", "SELECT Db FROM mysql.db WHERE User = 'wild_app';")
    assert stored.split() == ["wild\\_shop"]
    _my(db1, "wild_app", "wild pass 1", "wild_shop").close()
    assert "Access denied" in _my_refused(db1, "wild_app", "wild pass 1", "wildXshop")
    with (
        _my(db1, "wild_app", "wild pass 1", "wild_shop") as conn,
        conn.cursor() as cur,
        pytest.raises(pymysql.err.OperationalError, match="denied"),
    ):
        cur.execute("SELECT s FROM wildXshop.secret")


def test_postgresql_database_user_grants_and_passwords(
    panel: Panel, db1: TestHost, db_host: int
) -> None:
    pgco, other = _account(panel, "pgco"), _account(panel, "other")
    db = _database(panel, pgco, "pgco_shop", "postgresql")
    user = _user(panel, pgco, "pgco_web", "first pass 1", ["pgco_shop"], "postgresql")
    admin = _user(panel, pgco, "pgco_admin", "admin pass 1", ["pgco_shop"], "postgresql")
    _database(panel, other, "other_blog", "postgresql")
    _user(panel, other, "other_web", "other pass 1", ["other_blog"], "postgresql")
    _applied(panel, db_host)
    _assert_active(panel, db, user)

    with _pg(db1, "pgco_web", "first pass 1", "pgco_shop") as conn:
        conn.execute("CREATE TABLE item (id int PRIMARY KEY, label text)")
        conn.execute("INSERT INTO item VALUES (1, %s)", ("café ☕",))
        row = conn.execute("SELECT label FROM item WHERE id = 1").fetchone()
        assert row == ("café ☕",)
    # Two users of one database share its tables (both act as its owner role).
    with _pg(db1, "pgco_admin", "admin pass 1", "pgco_shop") as conn:
        conn.execute("INSERT INTO item VALUES (2, 'second')")
        count = conn.execute("SELECT count(*) FROM item").fetchone()
        assert count == (2,)
    assert "permission denied" in _pg_refused(db1, "other_web", "other pass 1", "pgco_shop")
    assert "pg_hba.conf rejects" in _pg_refused(db1, "other_web", "other pass 1", "postgres")

    pg_pid = _pid(db1, "/var/lib/postgresql/15/main/postmaster.pid")
    again = panel.reconcile(db_host)
    assert again.result == "noop", again.error

    panel.staff.ok("PATCH", f"/database-users/{user['id']}", json={"databases": []})
    _applied(panel, db_host)
    assert "permission denied" in _pg_refused(db1, "pgco_web", "first pass 1", "pgco_shop")
    with _pg(db1, "pgco_admin", "admin pass 1", "pgco_shop") as conn:
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (2,)

    panel.staff.ok("PATCH", f"/database-users/{admin['id']}", json={"password": "admin pass 2"})
    _applied(panel, db_host)
    assert "password authentication failed" in _pg_refused(
        db1, "pgco_admin", "admin pass 1", "pgco_shop"
    )
    _pg(db1, "pgco_admin", "admin pass 2", "pgco_shop").close()
    assert _pid(db1, "/var/lib/postgresql/15/main/postmaster.pid") == pg_pid

    # A membership granted by hand (here: read every database) is drift, taken back.
    _sql(db1, "postgresql", "GRANT pg_read_all_data TO pgco_admin;")
    _applied(panel, db_host)
    held = _sql(
        db1,
        "postgresql",
        "SELECT r.rolname FROM pg_auth_members a JOIN pg_roles r ON r.oid = a.roleid "
        "JOIN pg_roles m ON m.oid = a.member WHERE m.rolname = 'pgco_admin';",
    )
    assert held.split() == ["PGCO_SHOP"]

    # Deleting a user keeps the database and what the user made in it.
    panel.staff.ok("DELETE", f"/database-users/{admin['id']}", 202)
    _applied(panel, db_host)
    assert panel.staff.get(f"/database-users/{admin['id']}").status_code == 404
    assert _sql(db1, "postgresql", "SELECT count(*) FROM item;", "pgco_shop").strip() == "2"


@pytest.mark.parametrize("engine", ["mariadb", "postgresql"])
def test_deleting_a_database_archives_a_dump_that_restores(
    panel: Panel, db1: TestHost, db_host: int, engine: str
) -> None:
    slug = "arch" + engine[:2]
    account = _account(panel, slug)
    db = _database(panel, account, f"{slug}_data", engine)
    user = _user(panel, account, f"{slug}_app", "archive pass 1", [f"{slug}_data"], engine)
    _applied(panel, db_host)
    create = "CREATE TABLE keep (id int PRIMARY KEY, note varchar(40))"
    insert = "INSERT INTO keep VALUES (1, 'kept'), (2, 'also kept')"
    if engine == "mariadb":
        with (
            _my(db1, f"{slug}_app", "archive pass 1", f"{slug}_data") as conn,
            conn.cursor() as cur,
        ):
            cur.execute(create)
            cur.execute(insert)
    else:
        with _pg(db1, f"{slug}_app", "archive pass 1", f"{slug}_data") as pconn:
            pconn.execute(create)
            pconn.execute(insert)

    panel.staff.ok("DELETE", f"/databases/{db['id']}", 202)
    _applied(panel, db_host)
    assert panel.staff.get(f"/databases/{db['id']}").status_code == 404
    # The user stays, with nothing granted; the database is gone from the host.
    assert panel.staff.ok("GET", f"/database-users/{user['id']}")["databases"] == []
    if engine == "mariadb":
        assert f"{slug}_data" not in _sql(db1, engine, "SHOW DATABASES;").split()
    else:
        names = _sql(db1, engine, "SELECT datname FROM pg_database;").split()
        assert f"{slug}_data" not in names

    archive = Path(db1.path(f"/var/lib/konbit/archive/databases/{slug}"))
    dumps = list(archive.iterdir())
    assert len(dumps) == 1 and dumps[0].name.startswith(f"{slug}_data-{engine}-")
    assert dumps[0].name.endswith(".sql.gz")
    assert stat.S_IMODE(archive.stat().st_mode) == 0o700
    assert stat.S_IMODE(dumps[0].stat().st_mode) == 0o600
    assert b"also kept" in gzip.decompress(dumps[0].read_bytes())

    # It restores into a fresh database.
    fresh = f"{slug}_restored"
    _sql(db1, engine, f"CREATE DATABASE {fresh};")
    inside = f"/var/lib/konbit/archive/databases/{slug}/{dumps[0].name}"
    if engine == "mariadb":
        restore = f'gunzip -c "$1" | mariadb {fresh}'
    else:
        restore = f'gunzip -c "$1" | runuser -u postgres -- psql -X -q -v ON_ERROR_STOP=1 {fresh}'
    db1.exec(["sh", "-c", restore, "restore", inside], check=True)
    rows = _sql(db1, engine, "SELECT note FROM keep ORDER BY id;", fresh)
    assert rows.splitlines() == ["kept", "also kept"]


def test_hostile_names_are_refused_before_any_statement(
    panel: Panel, db1: TestHost, db_host: int
) -> None:
    evil = _account(panel, "evil")
    hostile = [
        "evil_x`; DROP DATABASE mysql; --",
        "evil_x'; DROP ROLE postgres; --",
        'evil_x"; DROP ROLE postgres; --',
        "evil_%",
        "evil_a_b",
        "evil_x\\",
        "evil_ X",
        "EVIL_X",
        "evil_é",
        "evil_x\n",
        "mysql",
        "other_x",
    ]
    for engine in ("mariadb", "postgresql"):
        for name in hostile:
            r = panel.staff.post(
                "/databases", json={"account_id": evil["id"], "name": name, "engine": engine}
            )
            assert r.status_code == 422, (engine, name)
            assert r.headers["content-type"].startswith("application/problem+json")
            r = panel.staff.post(
                "/database-users",
                json={
                    "account_id": evil["id"],
                    "name": name,
                    "password": "evil pass 1",
                    "engine": engine,
                },
            )
            assert r.status_code == 422, (engine, name)
    assert panel.staff.ok("GET", "/databases")["items"] == []
    assert panel.staff.ok("GET", "/database-users")["items"] == []
    plan = panel.staff.ok("GET", f"/hosts/{db_host}/plan")
    assert "evil" not in plan["diff"]
