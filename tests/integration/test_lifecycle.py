"""Backup, restore, clone and migrate of a member's site on real test hosts: files and a
MariaDB database, data streamed host → panel → host, the site checked over HTTP."""

from __future__ import annotations

import gzip
import os
import time
from pathlib import Path
from typing import Any

import paramiko
import pymysql
import pytest

from panel.tasks.run.dispatch import run_task
from panel.testhosts import TestHost
from tests.integration import test_sftp as sftp
from tests.integration.conftest import Panel, http_get, wait_for

pytestmark = pytest.mark.integration
MB = int(os.environ.get("KONBIT_LIFECYCLE_MB", "4"))  # the size of the site's big file


def _run(panel: Panel, task: dict[str, Any]) -> dict[str, Any]:
    started = time.monotonic()
    run_task(panel.world.db, panel.settings, task["id"], panel.plugins)
    got: dict[str, Any] = panel.staff.ok("GET", f"/tasks/{task['id']}")
    got["seconds"] = time.monotonic() - started
    print(f"{got['kind']}: {got['status']} in {got['seconds']:.2f}s")
    return got


def _sql(host: TestHost, sql: str, db: str = "") -> str:
    argv = ["mariadb", "--batch", "--raw", "--skip-column-names", *([db] if db else [])]
    return host.exec(argv, input=sql, check=True).stdout


def _put(host: TestHost, path: str, text: str, owner: str) -> None:
    host.exec(
        ["sh", "-c", 'cat > "$1" && chown "$2" "$1"', "x", path, owner], input=text, check=True
    )


# An application as members install them: its config names the database, its user and
# the db host; a page reads the database through it.
WP_CONFIG = """<?php
define('DB_NAME', '{slug}_app');
define('DB_USER', '{slug}_web');
define('DB_PASSWORD', 'app pass 12');
define('DB_HOST', '{db_host}');
"""
DB_PAGE = """<?php
require __DIR__ . '/wp-config.php';
$db = new mysqli(DB_HOST, DB_USER, DB_PASSWORD, DB_NAME);
echo 'row=', $db->query('SELECT v FROM t')->fetch_row()[0], ' db=', DB_NAME, "\n";
"""


def _world(
    panel: Panel, web: TestHost, db1: TestHost, slug: str, php: bool = False, **host_extra: Any
) -> tuple[dict[str, Any], dict[str, Any], Any, int, int]:
    """A site with a page, a big file and a database with one row, all live; with
    ``php``, an application config naming the database and a page that reads it."""
    web_host = panel.register(web, **host_extra)
    db_host = panel.register(db1, roles=["db"])
    account = panel.world.account(slug)
    panel.world.domain(account, f"{slug}.test")
    member = panel.world.member(account)
    site = member.ok(
        "POST",
        "/sites",
        201,
        json={
            "account_id": account["id"],
            "domain": f"{slug}.test",
            **({"php": "8.2"} if php else {}),
        },
    )
    member.ok(
        "POST",
        "/databases",
        201,
        json={"account_id": account["id"], "name": f"{slug}_app", "engine": "mariadb"},
    )
    member.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": account["id"],
            "name": f"{slug}_web",
            "password": "app pass 12",
            "databases": [f"{slug}_app"],
        },
    )
    assert panel.reconcile(db_host["id"]).result == "applied"
    assert panel.reconcile(web_host["id"]).result == "applied"
    root = f"/var/www/konbit/{slug}/www/{slug}.test"
    _put(web, f"{root}/index.html", f"<h1>{slug} v1</h1>\n", slug)
    _put(web, f"{root}/keep.txt", "keep me\n", slug)
    web.exec(
        [
            "sh",
            "-c",
            f'head -c {MB}M /dev/urandom > "$1/big.bin"; chown {slug} "$1/big.bin"',
            "x",
            root,
        ],
        check=True,
    )
    _sql(db1, "CREATE TABLE t (v VARCHAR(20)); INSERT INTO t VALUES ('before');", f"{slug}_app")
    wait_for(web, f"{slug}.test", 200, f"{slug} v1")
    if php:
        _put(web, f"{root}/wp-config.php", WP_CONFIG.format(slug=slug, db_host=db1.address), slug)
        _put(web, f"{root}/db.php", DB_PAGE, slug)
        wait_for(web, f"{slug}.test", 200, f"row=before db={slug}_app", "/db.php")
    return account, site, member, web_host["id"], db_host["id"]


def test_backup_delete_a_file_restore_in_place(
    panel: Panel, web1: TestHost, db1: TestHost, bk1: TestHost
) -> None:
    store = panel.register(bk1, roles=["backup"])
    account, site, member, _web_id, _db_id = _world(panel, web1, db1, "quebec")
    task = member.ok("POST", f"/sites/{site['id']}/backups", 202)
    assert task["status"] == "queued" and task["kind"] == "backup"
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    backups = member.ok("GET", f"/sites/{site['id']}/backups")["items"]
    assert len(backups) == 1
    b = backups[0]
    assert b["host_id"] == store["id"] and b["size_bytes"] > MB * 1024 * 1024
    assert [d["name"] for d in b["databases"]] == ["quebec_app"]
    stored = list(
        Path(bk1.path(f"/var/lib/konbit/backups/quebec/quebec.test-site{site['id']}")).iterdir()
    )
    assert {p.name for p in stored[0].iterdir()} == {
        "files.tar.gz",
        "db-quebec_app.mariadb.sql.gz",
        "manifest.json",
    }
    # The member loses a file and a row changes.
    root = "/var/www/konbit/quebec/www/quebec.test"
    web1.exec(["rm", f"{root}/keep.txt"], check=True)
    _sql(db1, "UPDATE t SET v = 'after';", "quebec_app")
    assert http_get(web1, "quebec.test", "/keep.txt")[0] == 404
    task = member.ok("POST", f"/sites/{site['id']}/restore", 202, json={"backup_id": b["id"]})
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    wait_for(web1, "quebec.test", 200, "keep me", "/keep.txt")
    assert _sql(db1, "SELECT v FROM t;", "quebec_app").strip() == "before"
    owner = web1.exec(["stat", "-c", "%U:%G", f"{root}/keep.txt"], check=True).stdout.strip()
    assert owner == "quebec:www-data"
    # What was replaced is archived, not lost.
    archive = Path(web1.path("/var/lib/konbit/archive/sites/quebec"))
    assert any(
        p.name.startswith("quebec.test-site") and "before-restore" in p.name
        for p in archive.iterdir()
    )
    dumps = list(Path(db1.path("/var/lib/konbit/archive/databases/quebec")).iterdir())
    assert len(dumps) == 1 and dumps[0].name.startswith("quebec_app-mariadb-")
    assert b"'after'" in gzip.decompress(dumps[0].read_bytes())
    # The member sees its tasks; another account's member sees neither them nor the backups.
    mine = member.ok("GET", "/tasks")["items"]
    assert [t["kind"] for t in mine] == ["restore", "backup"]
    other = panel.world.member(panel.world.account("lima"))
    assert other.get(f"/tasks/{task['id']}").status_code == 404
    assert other.get(f"/sites/{site['id']}/backups").status_code == 404
    assert other.ok("GET", "/tasks")["items"] == []
    _ = account


def test_retention_keeps_the_newest(
    panel: Panel, web1: TestHost, db1: TestHost, bk1: TestHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    panel.register(bk1, roles=["backup"])
    _account, site, member, _w, _d = _world(panel, web1, db1, "romeo")
    monkeypatch.setattr(panel.settings, "backup_keep_count", 2)
    for _ in range(3):
        assert (
            _run(panel, member.ok("POST", f"/sites/{site['id']}/backups", 202))["status"]
            == "succeeded"
        )
    kept = member.ok("GET", f"/sites/{site['id']}/backups")["items"]
    assert len(kept) == 2
    on_disk = Path(bk1.path(f"/var/lib/konbit/backups/romeo/romeo.test-site{site['id']}"))
    assert len(list(on_disk.iterdir())) == 2


def test_clone_answers_on_its_new_domain_with_its_own_database(
    panel: Panel, web1: TestHost, db1: TestHost
) -> None:
    account, site, member, web_id, db_id = _world(panel, web1, db1, "sierra", php=True)
    panel.world.domain(account, "copy.test")
    task = member.ok("POST", f"/sites/{site['id']}/clone", 202, json={"domain": "copy.test"})
    assert task["params"]["database_names"] == {"sierra_app": "sierra_app2"}
    assert task["params"]["user_names"] == {"sierra_web": "sierra_web2"}
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    assert "wp-config.php" in done["log"]
    wait_for(web1, "copy.test", 200, "sierra v1")
    wait_for(web1, "sierra.test", 200, "sierra v1")
    # Its own database, with the data, reached by its own user (same password).
    users = member.ok("GET", "/database-users")["items"]
    assert {u["name"] for u in users} == {"sierra_web", "sierra_web2"}
    with (
        pymysql.connect(
            host=db1.address, user="sierra_web2", password="app pass 12", database="sierra_app2"
        ) as conn,
        conn.cursor() as cur,
    ):
        cur.execute("UPDATE t SET v = 'clone'")
        conn.commit()
        cur.execute("SELECT v FROM t")
        assert cur.fetchone() == ("clone",)
    assert _sql(db1, "SELECT v FROM t;", "sierra_app").strip() == "before"
    # The copy's application reads the copy's database; the original's still its own.
    wait_for(web1, "copy.test", 200, "row=clone db=sierra_app2", "/db.php")
    wait_for(web1, "sierra.test", 200, "row=before db=sierra_app", "/db.php")
    config = "/var/www/konbit/sierra/www/copy.test/wp-config.php"
    stat = web1.exec(["stat", "-c", "%U %a", config], check=True).stdout.split()
    assert stat[0] == "sierra"
    _ = web_id, db_id


def test_a_deleted_sites_backup_comes_back(
    panel: Panel, web1: TestHost, db1: TestHost, bk1: TestHost
) -> None:
    panel.register(bk1, roles=["backup"])
    _account, site, member, web_id, db_id = _world(panel, web1, db1, "victor", php=True)
    done = _run(panel, member.ok("POST", f"/sites/{site['id']}/backups", 202))
    assert done["status"] == "succeeded", done["log"]
    # The member deletes the site and its database: both are archived, then gone.
    member.ok("DELETE", f"/sites/{site['id']}", 202)
    db = member.ok("GET", "/databases")["items"][0]
    member.ok("DELETE", f"/databases/{db['id']}", 202)
    assert panel.reconcile(web_id).result == "applied"
    assert panel.reconcile(db_id).result == "applied"
    assert "victor v1" not in http_get(web1, "victor.test")[1]
    assert member.get(f"/sites/{site['id']}").status_code == 404
    backups = member.ok("GET", "/backups", params={"deleted": "true"})["items"]
    assert len(backups) == 1 and backups[0]["domain"] == "victor.test"
    other = panel.world.member(panel.world.account("whiskey"))
    assert other.post(f"/backups/{backups[0]['id']}/restore", json={}).status_code == 404
    task = member.ok("POST", f"/backups/{backups[0]['id']}/restore", 202, json={})
    assert task["params"]["database_names"] == {"victor_app": "victor_app"}
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    wait_for(web1, "victor.test", 200, "victor v1")
    wait_for(web1, "victor.test", 200, "keep me", "/keep.txt")
    # The database is made again with its rows, granted again to its user (which kept
    # its password): the application works as before.
    assert _sql(db1, "SELECT v FROM t;", "victor_app").strip() == "before"
    wait_for(web1, "victor.test", 200, "row=before db=victor_app", "/db.php")


def test_migrate_web1_to_web2_serves_there_and_archives_the_old_copy(
    panel: Panel, web1: TestHost, web2: TestHost, db1: TestHost
) -> None:
    account, site, _member, web1_id, _db = _world(panel, web1, db1, "tango")
    # An SFTP login of the site goes with it.
    key = paramiko.ECDSAKey.generate()
    login = panel.staff.ok(
        "POST",
        "/objects/sftp_login",
        201,
        json={"account_id": account["id"], "site_id": site["id"], "name": "tango-web",
              "spec": {"ssh_keys": [sftp.pub(key)]}},
    )  # fmt: skip
    assert panel.reconcile(web1_id).result == "applied"
    with sftp.connect(web1, "tango-web", key=key) as client:
        assert "keep.txt" in client.listdir("/")
    web2_id = panel.register(web2, settings={"web_server": "apache2"})["id"]
    task = panel.staff.ok("POST", f"/sites/{site['id']}/migrate", 202, json={"host_id": web2_id})
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    panel.reconcile(web1_id)
    with sftp.connect(web2, "tango-web", key=key) as client:
        assert "keep.txt" in client.listdir("/")
    assert sftp.refused(web1, "tango-web", key=key)
    assert panel.staff.ok("GET", f"/objects/sftp_login/{login['id']}")["status"] == "active"
    body = wait_for(web2, "tango.test", 200, "tango v1")
    assert body == "<h1>tango v1</h1>\n"
    assert wait_for(web2, "tango.test", 200, "", "/big.bin")
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["host_id"] == web2_id
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["status"] == "active"
    assert "tango v1" not in http_get(web1, "tango.test")[1]
    assert not Path(web1.path("/var/www/konbit/tango/www/tango.test")).exists()
    archived = list(Path(web1.path("/var/lib/konbit/archive/sites/tango")).iterdir())
    assert len(archived) == 1 and "migrated" in archived[0].name
    assert (archived[0] / "keep.txt").read_text() == "keep me\n"
    _ = web1_id


def test_a_migration_the_new_host_refuses_leaves_the_site_on_web1(
    panel: Panel, web1: TestHost, web2: TestHost, db1: TestHost
) -> None:
    _account, site, _member, web1_id, _db = _world(panel, web1, db1, "uniform")
    web2_id = panel.register(web2, settings={"web_server": "apache2"})["id"]
    broken = "/etc/apache2/conf-enabled/zz-broken.conf"
    web2.exec(["sh", "-c", 'echo "NoSuchDirective on" > "$1"', "x", broken], check=True)
    try:
        task = panel.staff.ok(
            "POST", f"/sites/{site['id']}/migrate", 202, json={"host_id": web2_id}
        )
        done = _run(panel, task)
    finally:
        web2.exec(["rm", "-f", broken], check=True)
    assert done["status"] == "failed"
    assert "new host refused" in done["error"], done["log"]
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["host_id"] == web1_id
    wait_for(web1, "uniform.test", 200, "uniform v1")
    assert (Path(web1.path("/var/www/konbit/uniform/www/uniform.test")) / "keep.txt").exists()
    assert not Path(web2.path("/var/www/konbit/uniform/www/uniform.test")).exists()
    assert panel.reconcile(web2_id).result in ("applied", "noop")
    assert "uniform v1" not in http_get(web2, "uniform.test")[1]
    state = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert state["status"] == "active", (state, done["log"])


def test_a_whole_account_moves_to_web2_and_db2(
    panel: Panel, web1: TestHost, web2: TestHost, db1: TestHost, db2: TestHost
) -> None:
    account, site, member, _web1_id, db1_id = _world(panel, web1, db1, "mike", php=True)
    panel.world.domain(account, "mike2.test")
    other = member.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "mike2.test"}
    )
    assert panel.reconcile(_web1_id).result == "applied"
    _put(web1, "/var/www/konbit/mike/www/mike2.test/index.html", "second site\n", "mike")
    web2_id = panel.register(web2, settings={"web_server": "apache2"})["id"]
    db2_id = panel.register(db2, roles=["db"])["id"]
    body = {"web_host_id": web2_id, "db_host_id": db2_id}
    task = panel.staff.ok("POST", f"/accounts/{account['id']}/migrate", 202, json=body)
    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    assert done["result"] == {"moved": 3, "left": 0}
    for s in (site, other):
        got = panel.staff.ok("GET", f"/sites/{s['id']}")
        assert (got["host_id"], got["status"]) == (web2_id, "active")
    wait_for(web2, "mike.test", 200, "mike v1")
    wait_for(web2, "mike2.test", 200, "second site")
    # The application on web2 reads its database on db2: its config was pointed there.
    wait_for(web2, "mike.test", 200, "row=before db=mike_app", "/db.php")
    config = (Path(web2.path("/var/www/konbit/mike/www/mike.test")) / "wp-config.php").read_text()
    assert f"'{db2.address}'" in config and db1.address not in config
    db = member.ok("GET", "/databases")["items"][0]
    user = member.ok("GET", "/database-users")["items"][0]
    assert (db["host_id"], db["status"]) == (db2_id, "active")
    assert (user["host_id"], user["status"]) == (db2_id, "active")
    # Nothing of it is left live on the old hosts; their copies are archived.
    assert "mike v1" not in http_get(web1, "mike.test")[1]
    assert _sql(db1, "SHOW DATABASES LIKE 'mike_app';") == ""
    assert _sql(db1, "SELECT user FROM mysql.user WHERE user = 'mike_web';") == ""
    archived = {p.name for p in Path(web1.path("/var/lib/konbit/archive/sites/mike")).iterdir()}
    assert len(archived) == 2 and all("migrated" in n for n in archived)
    assert list(Path(db1.path("/var/lib/konbit/archive/databases/mike")).iterdir())
    assert panel.reconcile(db1_id).result in ("applied", "noop")
    # Again: nothing to move.
    again = _run(
        panel, panel.staff.ok("POST", f"/accounts/{account['id']}/migrate", 202, json=body)
    )
    assert again["status"] == "succeeded" and again["result"] == {"moved": 0, "left": 0}
