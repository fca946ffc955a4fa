"""Moving a member's database to another db host, end to end on two real db hosts: the
database and its users made on db2, the data streamed db1 → panel → db2, the old copy
dumped into db1's archive and dropped; a failure leaves everything on db1."""

from __future__ import annotations

import gzip
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panel.core.validation import db_prefix
from panel.tasks.run import migrate
from panel.tasks.run.dispatch import run_task
from panel.tasks.streams import pipe as real_pipe
from panel.testhosts import TestHost
from provisioners.databases import ARCHIVE_DIR
from tests.integration.conftest import Panel
from tests.integration.dbtools import database as _database
from tests.integration.dbtools import my as _my
from tests.integration.dbtools import pg as _pg
from tests.integration.dbtools import sql as _sql
from tests.integration.dbtools import user as _user

pytestmark = pytest.mark.integration

ROWS = [(1, "café ☕"), (2, "second row"), (3, "third row")]


# ---------------------------------------------------------------- helpers


def _databases_on(host: TestHost, engine: str) -> set[str]:
    if engine == "mariadb":
        return set(_sql(host, engine, "SHOW DATABASES;").split())
    return set(_sql(host, engine, "SELECT datname FROM pg_database;").split())


def _users_on(host: TestHost, engine: str) -> set[str]:
    if engine == "mariadb":
        return set(_sql(host, engine, "SELECT User FROM mysql.user;").split())
    return set(_sql(host, engine, "SELECT rolname FROM pg_roles;").split())


def _fill(host: TestHost, engine: str, user: str, password: str, db: str) -> None:
    """A table with rows, made by the member's own user (as its application would)."""
    create = "CREATE TABLE item (id int PRIMARY KEY, label varchar(40))"
    insert = "INSERT INTO item VALUES (%s, %s)"
    if engine == "mariadb":
        with _my(host, user, password, db) as conn, conn.cursor() as cur:
            cur.execute(create)
            cur.executemany(insert, ROWS)
    else:
        with _pg(host, user, password, db) as pconn, pconn.cursor() as pcur:
            pcur.execute(create)
            pcur.executemany(insert, ROWS)


def _rows(host: TestHost, engine: str, user: str, password: str, db: str) -> list[Any]:
    query = "SELECT id, label FROM item ORDER BY id"
    if engine == "mariadb":
        with _my(host, user, password, db) as conn, conn.cursor() as cur:
            cur.execute(query)
            return list(cur.fetchall())
    with _pg(host, user, password, db) as pconn:
        return list(pconn.execute(query).fetchall())


def _run(panel: Panel, task: dict[str, Any], what: str) -> dict[str, Any]:
    started = time.monotonic()
    run_task(panel.world.db, panel.settings, task["id"], panel.plugins)
    got: dict[str, Any] = panel.staff.ok("GET", f"/tasks/{task['id']}")
    got["seconds"] = time.monotonic() - started
    copied = [line for line in got["log"].splitlines() if " bytes in " in line]
    print(f"\n{what}: {got['kind']} {got['status']} in {got['seconds']:.2f}s", *copied)
    return got


def _migrate(panel: Panel, db: dict[str, Any], host_id: int) -> dict[str, Any]:
    task: dict[str, Any] = panel.staff.ok(
        "POST", f"/databases/{db['id']}/migrate", 202, json={"host_id": host_id}
    )
    assert task["kind"] == "migrate-database" and task["status"] == "queued"
    assert task["database_id"] == db["id"]
    return task


def _settled(panel: Panel, host_id: int) -> None:
    report = panel.reconcile(host_id)
    assert report.result in ("applied", "noop"), report.error


def _state(panel: Panel, db: dict[str, Any], user: dict[str, Any]) -> tuple[Any, ...]:
    d = panel.staff.ok("GET", f"/databases/{db['id']}")
    u = panel.staff.ok("GET", f"/database-users/{user['id']}")
    return d["host_id"], d["status"], u["host_id"], u["status"]


def _archived(host: TestHost, slug: str, name: str, engine: str) -> bytes:
    """The one dump of ``name`` in the host's database archive, uncompressed."""
    archive = Path(host.path(f"{ARCHIVE_DIR}/{slug}"))
    dumps = sorted(p for p in archive.iterdir() if p.name.startswith(f"{name}-{engine}-"))
    assert len(dumps) == 1, [p.name for p in archive.iterdir()]
    assert dumps[0].name.endswith(".sql.gz")
    return gzip.decompress(dumps[0].read_bytes())


@pytest.fixture
def db1_id(panel: Panel, db1: TestHost) -> Iterator[int]:
    yield int(panel.register(db1, roles=["db"])["id"])


def _second(panel: Panel, db2: TestHost) -> int:
    """db2 joins after the member's objects were placed on db1 (placement takes the
    emptiest db host), and is bootstrapped before anything moves to it."""
    host_id = int(panel.register(db2, roles=["db"])["id"])
    _settled(panel, host_id)
    return host_id


def _login_error(host: TestHost, engine: str, user: str, password: str, db: str) -> str:
    try:
        (_my if engine == "mariadb" else _pg)(host, user, password, db).close()
    except Exception as exc:  # pymysql's or psycopg's refusal
        return str(exc)
    return ""


def _query_error(conn: Any) -> str:
    try:
        conn.cursor().execute("SELECT 1")
    except Exception as exc:
        return str(exc) or type(exc).__name__
    return ""


def _moved(
    panel: Panel,
    db1: TestHost,
    db2: TestHost,
    db1_id: int,
    slug: str,
    engine: str,
) -> tuple[dict[str, Any], dict[str, Any], int]:
    """A database with rows and a user on db1, moved to db2 by a task that succeeds."""
    account = panel.world.account(slug)
    prefix = db_prefix(slug)
    name, uname, password = f"{prefix}data", f"{prefix}app", f"{slug} pass 1"
    db = _database(panel, account, name, engine)
    user = _user(panel, account, uname, password, [name], engine)
    _settled(panel, db1_id)
    assert _state(panel, db, user) == (db1_id, "active", db1_id, "active")
    _fill(db1, engine, uname, password, name)
    db2_id = _second(panel, db2)

    # The application's session, open before the move; while the data is copied, it is
    # ended and a new login is refused: a write then fails instead of being lost.
    app: Any = (_my if engine == "mariadb" else _pg)(db1, uname, password, name)
    during: list[str] = []

    def watching(*args: Any, **kwargs: Any) -> Any:
        if not during:
            during.append(_login_error(db1, engine, uname, password, name))
            during.append(_query_error(app))
        return real_pipe(*args, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(migrate, "pipe", watching)
        done = _run(panel, _migrate(panel, db, db2_id), f"{engine} db1 → db2")
    assert done["status"] == "succeeded", done["log"]
    assert done["result"] == {"database_id": db["id"], "old_host_id": db1_id, "host_id": db2_id}
    refused, ended = during
    assert "locked" in refused or "not permitted to log in" in refused, refused
    assert ended, "the application's session outlived the lock"
    assert _state(panel, db, user) == (db2_id, "active", db2_id, "active")

    # On db2, reached by the member's user with its unchanged password.
    assert _rows(db2, engine, uname, password, name) == ROWS
    # Gone from db1: the database, the user and (PostgreSQL) the database's owner role.
    assert name not in _databases_on(db1, engine)
    gone = {uname, name.upper()} if engine == "postgresql" else {uname}
    assert not gone & _users_on(db1, engine)
    # The old copy is in db1's archive, and holds the rows.
    dump = _archived(db1, slug, name, engine)
    assert b"second row" in dump and "café ☕".encode() in dump

    # Both hosts agree with the panel afterwards.
    _settled(panel, db1_id)
    _settled(panel, db2_id)
    assert _state(panel, db, user) == (db2_id, "active", db2_id, "active")
    assert _rows(db2, engine, uname, password, name) == ROWS
    return db, user, db2_id


# ---------------------------------------------------------------- the moves


def test_mariadb_database_moves_to_db2_with_its_user(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    _moved(panel, db1, db2, db1_id, "xray", "mariadb")
    with _my(db2, "xray_app", "xray pass 1", "xray_data") as conn, conn.cursor() as cur:
        cur.execute("INSERT INTO item VALUES (4, 'written on db2')")
        cur.execute("SELECT @@hostname, COUNT(*) FROM item")
        assert cur.fetchone() == ("db2", 4)


def test_postgresql_database_moves_to_db2_with_its_rights(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    _moved(panel, db1, db2, db1_id, "yankee", "postgresql")
    # Owned by the database's owner role there too, so the user still writes and creates.
    owner = _sql(db2, "postgresql", "SELECT tableowner FROM pg_tables WHERE tablename = 'item';",
                 "yankee_data")  # fmt: skip
    assert owner.strip() == "YANKEE_DATA"
    with _pg(db2, "yankee_app", "yankee pass 1", "yankee_data") as conn:
        conn.execute("INSERT INTO item VALUES (4, 'written on db2')")
        conn.execute("CREATE TABLE made_after (id int)")
        conn.execute("INSERT INTO made_after VALUES (1)")
        assert conn.execute("SELECT count(*) FROM item").fetchone() == (4,)
        assert conn.execute("SELECT count(*) FROM made_after").fetchone() == (1,)


def test_the_old_copy_is_archived_under_the_account_slug(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    """A slug with a hyphen: its database names use ``_`` (``whis_key_data``), and the
    archive directory is the slug's, as when a database is deleted (provisioners)."""
    _moved(panel, db1, db2, db1_id, "whis-key", "mariadb")


# ---------------------------------------------------------------- failures


def test_a_move_to_a_db2_whose_mariadb_is_down_leaves_it_on_db1(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    account = panel.world.account("zulu")
    db = _database(panel, account, "zulu_data", "mariadb")
    user = _user(panel, account, "zulu_app", "zulu pass 1", ["zulu_data"], "mariadb")
    _settled(panel, db1_id)
    _fill(db1, "mariadb", "zulu_app", "zulu pass 1", "zulu_data")
    db2_id = _second(panel, db2)

    db2.exec(["service", "mariadb", "stop"], check=True)
    try:
        done = _run(panel, _migrate(panel, db, db2_id), "mariadb db1 → db2 (mariadb down)")
    finally:
        db2.exec(["service", "mariadb", "start"], check=True)
    print(f"error: {done['error']}\n{done['log']}")
    assert done["status"] == "failed"
    assert done["error"] and "mariadb" in done["error"], done["log"]
    assert _state(panel, db, user) == (db1_id, "active", db1_id, "active"), done["log"]
    assert _rows(db1, "mariadb", "zulu_app", "zulu pass 1", "zulu_data") == ROWS
    # Nothing was left on db2 once its server is back.
    assert "zulu_data" not in _databases_on(db2, "mariadb")
    assert "zulu_app" not in _users_on(db2, "mariadb")
    assert not Path(db1.path(f"{ARCHIVE_DIR}/zulu")).exists()
    _settled(panel, db1_id)
    _settled(panel, db2_id)
    assert "zulu_data" not in _databases_on(db2, "mariadb")


def test_a_copy_that_fails_half_way_is_cleaned_from_db2(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    """db2 makes the database and the user, then cannot take the data: its temporary
    directory is full (a tiny tmpfs over /var/tmp, where the load spools the dump)."""
    account = panel.world.account("zulu-half")
    db = _database(panel, account, "zulu_half_data", "mariadb")
    user = _user(panel, account, "zulu_half_app", "half pass 1", ["zulu_half_data"], "mariadb")
    _settled(panel, db1_id)
    _fill(db1, "mariadb", "zulu_half_app", "half pass 1", "zulu_half_data")
    # Incompressible data, so the gzip'd dump is far bigger than the tmpfs.
    _sql(db1, "mariadb", "CREATE TABLE blob_t (b LONGBLOB); "
         "INSERT INTO blob_t SELECT RANDOM_BYTES(1024) FROM seq_1_to_64;",
         "zulu_half_data")  # fmt: skip
    db2_id = _second(panel, db2)

    db2.exec(["mount", "-t", "tmpfs", "-o", "size=8k", "konbit-full", "/var/tmp"], check=True)
    try:
        done = _run(panel, _migrate(panel, db, db2_id), "mariadb db1 → db2 (db2 disk full)")
    finally:
        db2.exec(["umount", "/var/tmp"], check=True)
    print(f"error: {done['error']}\n{done['log']}")
    assert done["status"] == "failed"
    assert "No space left" in (done["error"] or ""), done["log"]
    assert "database zulu_half_data" in (done["error"] or "")
    assert "new db host: reconcile applied" in done["log"]  # db2 had made them
    assert _state(panel, db, user) == (db1_id, "active", db1_id, "active"), done["log"]
    assert _rows(db1, "mariadb", "zulu_half_app", "half pass 1", "zulu_half_data") == ROWS
    assert "zulu_half_data" not in _databases_on(db2, "mariadb")
    assert "zulu_half_app" not in _users_on(db2, "mariadb")
    assert "zulu_half_data" in _databases_on(db1, "mariadb")
    _settled(panel, db1_id)
    _settled(panel, db2_id)


def test_a_db2_that_dies_half_way_keeps_nothing_once_back(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """db2 makes the database and the user, then its MariaDB dies just as the data
    starts to flow (so the clean-up cannot reach it either); once it is back up, neither
    the database nor the user (with its password) may be left there."""
    account = panel.world.account("zulu-dies")
    db = _database(panel, account, "zulu_dies_data", "mariadb")
    user = _user(panel, account, "zulu_dies_app", "dies pass 1", ["zulu_dies_data"], "mariadb")
    _settled(panel, db1_id)
    _fill(db1, "mariadb", "zulu_dies_app", "dies pass 1", "zulu_dies_data")
    db2_id = _second(panel, db2)

    def dying(*args: Any, **kwargs: Any) -> Any:
        db2.exec(["service", "mariadb", "stop"], check=True)
        return real_pipe(*args, **kwargs)

    monkeypatch.setattr(migrate, "pipe", dying)
    try:
        done = _run(panel, _migrate(panel, db, db2_id), "mariadb db1 → db2 (db2 dies)")
    finally:
        db2.exec(["service", "mariadb", "start"], check=True)
    print(f"error: {done['error']}\n{done['log']}")
    assert done["status"] == "failed"
    assert "new db host: reconcile applied" in done["log"]
    assert _rows(db1, "mariadb", "zulu_dies_app", "dies pass 1", "zulu_dies_data") == ROWS
    assert _state(panel, db, user) == (db1_id, "active", db1_id, "active"), done["log"]
    # The copies db2 got could not be dropped: a clean-up task is queued for the
    # lifecycle round (every few minutes), which is what runs it here.
    cleanups = panel.staff.ok("GET", "/tasks", params={"kind": "clean-up"})["items"]
    mine = [t for t in cleanups if t["params"].get("after_task") == done["id"]]
    assert len(mine) == 1 and mine[0]["status"] == "queued", cleanups
    assert f"task {mine[0]['id']} retries it" in done["log"]
    assert mine[0]["params"]["databases"] == [["zulu_dies_data", "mariadb"]]
    assert mine[0]["params"]["users"] == [["zulu_dies_app", "mariadb"]]
    assert {"zulu_dies_data", "zulu_dies_app"} <= (
        _databases_on(db2, "mariadb") | _users_on(db2, "mariadb")
    )
    cleaned = _run(panel, mine[0], "clean-up of db2")
    assert cleaned["status"] == "succeeded", cleaned["log"]
    _settled(panel, db1_id)
    _settled(panel, db2_id)
    left = {"zulu_dies_data", "zulu_dies_app"} & (
        _databases_on(db2, "mariadb") | _users_on(db2, "mariadb")
    )
    assert not left, f"left on db2: {sorted(left)}"


def test_a_user_with_grants_on_two_databases_is_not_split(
    panel: Panel, db1: TestHost, db2: TestHost, db1_id: int
) -> None:
    account = panel.world.account("vic")
    one = _database(panel, account, "vic_one", "mariadb")
    _database(panel, account, "vic_two", "mariadb")
    user = _user(panel, account, "vic_app", "vic pass 1", ["vic_one", "vic_two"], "mariadb")
    _settled(panel, db1_id)
    db2_id = _second(panel, db2)

    r = panel.staff.post(f"/databases/{one['id']}/migrate", json={"host_id": db2_id})
    assert r.status_code == 409, r.text
    assert "User vic_app also has vic_two" in r.json()["detail"]
    assert _state(panel, one, user) == (db1_id, "active", db1_id, "active")
    assert {"vic_one", "vic_two"} <= _databases_on(db1, "mariadb")
    assert "vic_one" not in _databases_on(db2, "mariadb")
    assert panel.reconcile(db2_id).result == "noop"


def test_only_staff_move_a_database(panel: Panel, db1: TestHost, db2: TestHost) -> None:
    db1_id = int(panel.register(db1, roles=["db"])["id"])
    account = panel.world.account("whisky")
    db = _database(panel, account, "whisky_data", "mariadb")
    db2_id = int(panel.register(db2, roles=["db"])["id"])
    member = panel.world.member(account)
    r = member.post(f"/databases/{db['id']}/migrate", json={"host_id": db2_id})
    assert r.status_code == 403, r.text
    stranger = panel.world.member(panel.world.account("victor"))
    r = stranger.post(f"/databases/{db['id']}/migrate", json={"host_id": db2_id})
    assert r.status_code == 404, r.text
    assert panel.staff.ok("GET", "/tasks")["items"] == []
    assert panel.staff.ok("GET", f"/databases/{db['id']}")["host_id"] == db1_id
    # Staff: not to the host it is on, nor to a host that is not a db host.
    r = panel.staff.post(f"/databases/{db['id']}/migrate", json={"host_id": db1_id})
    assert r.status_code == 422, r.text
    web = panel.world.host(["web"])
    r = panel.staff.post(f"/databases/{db['id']}/migrate", json={"host_id": web["id"]})
    assert r.status_code == 422, r.text
    assert panel.staff.ok("GET", "/tasks")["items"] == []
