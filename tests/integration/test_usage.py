"""Usage collected from real hosts: known amounts in, the same amounts out of the API."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path
from typing import Any

import pytest

from panel.testhosts import TestHost
from panel.usage.service import collect_host
from tests.integration.conftest import Panel, http_get, wait_for
from tests.integration.test_mail import send, wait_subject

pytestmark = pytest.mark.integration

MIB = 1024 * 1024


def _collect(panel: Panel, host_id: int) -> None:
    report = collect_host(panel.world.db, panel.settings, host_id, panel.plugins)
    assert report.ok, report.error


def _usage(panel: Panel, account_id: int, **params: Any) -> list[dict[str, Any]]:
    rows = panel.staff.ok(
        "GET", "/usage", params={"account_id": account_id, "detail": "true", **params}
    )["items"]
    return rows  # type: ignore[no-any-return]


def _one(rows: list[dict[str, Any]], metric: str, obj: tuple[str, int]) -> dict[str, Any]:
    found = [
        r for r in rows if r["metric"] == metric and (r["object_type"], r["object_id"]) == obj
    ]
    assert len(found) == 1, (metric, obj, rows)
    return found[0]


def _du(host: TestHost, path: str) -> int:
    out = host.exec(["du", "-s", "-B1", "--", path], check=True).stdout
    return int(out.split()[0])


def test_disk_traffic_and_mail_are_reported_exactly_and_only_once(
    panel: Panel, web1: TestHost, mail1: TestHost
) -> None:
    web = panel.register(web1)
    mail = panel.register(mail1, roles=["mail"])
    account = panel.world.account("usage", sites=10)
    panel.world.domain(account, "usage.test")
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "www.usage.test"}
    )
    box = panel.staff.ok(
        "POST",
        "/mailboxes",
        201,
        json={
            "account_id": account["id"],
            "address": "count@usage.test",
            "password": "correct horse battery",
        },
    )
    for host in (web, mail):
        assert panel.reconcile(host["id"]).result == "applied"
    wait_for(web1, "www.usage.test", 200, "www.usage.test")
    # A baseline: the log may hold earlier requests (the readiness probe, a previous
    # test's site with the same id); from here on every request is known.
    _collect(panel, web["id"])
    first = _usage(panel, account["id"])
    baseline = _one(first, "http_requests", ("site", site["id"]))["sum"]
    baseline_bytes = _one(first, "http_bytes", ("site", site["id"]))["sum"]
    root = "/var/www/konbit/usage/www/www.usage.test"
    Path(web1.path(f"{root}/data.bin")).write_bytes(os.urandom(3 * MIB + 123))
    web1.exec(["chown", "usage:www-data", f"{root}/data.bin"], check=True)
    index = len(http_get(web1, "www.usage.test", "/")[1].encode())
    codes = [
        http_get(web1, "www.usage.test", path)[0]
        for path in ("/data.bin", "/missing", "/", "/data.bin", "/", "/")
    ]
    assert codes == [200, 404, 200, 200, 200, 200]
    for subject in ("one", "two", "three"):
        send(mail1, "count@usage.test", f"usage {subject}", "x" * 1000 + "\n")
    wait_subject(mail1, "count@usage.test", "usage three")
    _collect(panel, web["id"])
    _collect(panel, mail["id"])

    rows = _usage(panel, account["id"])
    requests = _one(rows, "http_requests", ("site", site["id"]))
    assert requests["sum"] - baseline == 7  # every request counted once
    sent = _one(rows, "http_bytes", ("site", site["id"]))["sum"] - baseline_bytes
    body_bytes = 4 * index + 2 * (3 * MIB + 123)
    assert body_bytes < sent < body_bytes + 7 * 600  # bodies plus headers and the 404
    site_bytes = _one(rows, "site_bytes", ("site", site["id"]))["peak"]
    assert site_bytes == _du(web1, root) and site_bytes >= 3 * MIB + 123
    home = _one(rows, "disk_bytes", ("account", account["id"]))["peak"]
    assert home == _du(web1, "/var/www/konbit/usage") and home >= site_bytes
    maildir = Path(mail1.path("/var/vmail/usage.test/count/Maildir"))
    on_disk = [p.stat().st_size for p in maildir.rglob("*") if p.parent.name in ("cur", "new")]
    assert _one(rows, "mail_messages", ("mailbox", box["id"]))["peak"] == 3
    assert _one(rows, "mail_bytes", ("mailbox", box["id"]))["peak"] == sum(on_disk)

    # A second collection without new traffic adds nothing to the counters.
    _collect(panel, web["id"])
    again = _usage(panel, account["id"])
    assert _one(again, "http_requests", ("site", site["id"]))["sum"] - baseline == 7
    assert _one(again, "http_requests", ("site", site["id"]))["samples"] == 3

    # CSV says what JSON says.
    csv_text = panel.staff.get(
        "/usage",
        params={"account_id": account["id"], "detail": "true"},
        headers={"Accept": "text/csv"},
    )
    assert csv_text.headers["content-type"].startswith("text/csv")
    from_csv = list(csv.DictReader(io.StringIO(csv_text.text)))
    assert len(from_csv) == len(again)
    for row, item in zip(from_csv, again, strict=True):
        for key in ("metric", "period", "sum", "peak", "average"):
            assert row[key] == ("" if item[key] is None else str(item[key])), (key, row, item)

    # Storage against the quota, as the member sees it.
    member = panel.world.member(account)
    storage = member.ok("GET", "/usage/storage")["items"]
    assert storage[0]["disk_bytes"] == home + sum(on_disk)
    assert storage[0]["over_quota_since"] is None


def test_log_rotation_loses_and_repeats_nothing(panel: Panel, web1: TestHost) -> None:
    web = panel.register(web1)
    account = panel.world.account("rotate")
    panel.world.domain(account, "rotate.test")
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "rotate.test"}
    )
    assert panel.reconcile(web["id"]).result == "applied"
    wait_for(web1, "rotate.test", 200, "rotate.test")
    _collect(panel, web["id"])
    baseline = _one(_usage(panel, account["id"]), "http_requests", ("site", site["id"]))["sum"]
    made = 0
    for _ in range(3):
        made += http_get(web1, "rotate.test")[0] == 200
    _collect(panel, web["id"])
    for _ in range(2):
        made += http_get(web1, "rotate.test")[0] == 200
    # logrotate's way: rename, then make nginx reopen its logs; then more traffic.
    log = f"/var/log/konbit/web/site-{site['id']}.access.log"
    web1.exec(["mv", log, f"{log}.1"], check=True)
    web1.exec(["sh", "-c", "kill -USR1 $(cat /run/nginx.pid)"], check=True)
    while not Path(web1.path(log)).exists():
        made += http_get(web1, "rotate.test")[0] == 200
        assert made < 100, "nginx never reopened its log"
    for _ in range(4):
        made += http_get(web1, "rotate.test")[0] == 200
    _collect(panel, web["id"])
    total = _one(_usage(panel, account["id"]), "http_requests", ("site", site["id"]))["sum"]
    assert total - baseline == made
    # And once more, with nothing new: nothing is added.
    _collect(panel, web["id"])
    again = _one(_usage(panel, account["id"]), "http_requests", ("site", site["id"]))["sum"]
    assert again == total


def test_a_host_that_cannot_be_reached_is_retried_and_blocks_no_other(
    panel: Panel, web1: TestHost
) -> None:
    web = panel.register(web1)
    dead = panel.staff.ok(
        "POST",
        "/hosts",
        201,
        json={
            "name": "gone",
            "address": "10.77.99.250",
            "host_key": web1.host_key,
            "roles": ["web"],
        },
    )
    account = panel.world.account("spread")
    panel.world.domain(account, "spread.test")
    panel.staff.ok(
        "POST",
        "/sites",
        201,
        json={"account_id": account["id"], "domain": "spread.test", "host_id": web["id"]},
    )
    assert panel.reconcile(web["id"]).result == "applied"
    failed = collect_host(panel.world.db, panel.settings, dead["id"], panel.plugins)
    assert not failed.ok
    _collect(panel, web["id"])
    hosts = {h["host_id"]: h for h in panel.staff.ok("GET", "/usage/hosts")["items"]}
    assert hosts[dead["id"]]["failures"] == 1 and hosts[dead["id"]]["retry_at"]
    assert hosts[web["id"]]["error"] is None and hosts[web["id"]]["collected_at"]


def test_a_databases_size_is_reported_as_the_engine_counts_it(
    panel: Panel, db1: TestHost
) -> None:
    from tests.integration.test_databases import _my

    host = panel.register(db1, roles=["db"])
    account = panel.world.account("sized")
    db = panel.staff.ok(
        "POST",
        "/databases",
        201,
        json={"account_id": account["id"], "name": "sized_data", "engine": "mariadb"},
    )
    panel.staff.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": account["id"],
            "name": "sized_app",
            "password": "a long db password",
            "databases": ["sized_data"],
            "engine": "mariadb",
        },
    )
    assert panel.reconcile(host["id"]).result == "applied"
    with _my(db1, "sized_app", "a long db password", "sized_data") as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE blobs (id INT PRIMARY KEY, data LONGBLOB)")
        for i in range(40):
            cur.execute("INSERT INTO blobs VALUES (%s, %s)", (i, os.urandom(50_000)))
        cur.execute("ANALYZE TABLE blobs")
        cur.fetchall()
    _collect(panel, host["id"])
    rows = _usage(panel, account["id"])
    reported = _one(rows, "db_bytes", ("database", db["id"]))["peak"]
    engine = db1.exec(
        [
            "mariadb",
            "--batch",
            "--skip-column-names",
            "-e",
            "SELECT SUM(data_length + index_length) FROM information_schema.tables "
            "WHERE table_schema = 'sized_data'",
        ],
        check=True,
    ).stdout
    assert reported == int(engine.strip()) >= 40 * 50_000
