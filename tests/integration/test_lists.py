"""A member's mailing list on a real Mailman 3 lists host: a post reaches a subscriber's
mailbox on a real mail host, over SMTP, Mailman, the relay and IMAP."""

from __future__ import annotations

import json
import smtplib
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from panel.testhosts import MAILMAN3, Lab, TestHost
from tests.integration.conftest import Panel
from tests.integration.test_mail import PASSWORD, subjects

pytestmark = pytest.mark.integration

REST_PORT, LMTP_PORT = 8001, 8024


def _listening(host: TestHost, port: int) -> bool:
    """From the host's own /proc/net/tcp: no probe, no cost."""
    want = f":{port:04X} 00000000:0000 0A"
    return want in Path(f"/proc/{host.pid}/net/tcp").read_text()


@pytest.fixture(scope="session")
def lists1(lab: Lab, panel_key: str) -> TestHost:
    """One lists host per session: Mailman takes seconds to start."""
    started = time.monotonic()
    host = lab.start("lists1", roles=["lists"], authorized_keys=[panel_key], layers=[MAILMAN3])
    host.wait_ready(180)  # the first run builds the mailman3 layer (~45 s)
    deadline = time.monotonic() + 60
    while not (_listening(host, REST_PORT) and _listening(host, LMTP_PORT)):
        if time.monotonic() > deadline:
            log = Path(host.path("/var/log/mailman3/mailman.log"))
            raise AssertionError(f"Mailman did not start:\n{log.read_text()[-3000:]}")
        time.sleep(0.1)
    print(f"lists1: Mailman answering {time.monotonic() - started:.1f} s after start")
    return host


def _world(panel: Panel, mail1: TestHost, lists1: TestHost) -> tuple[dict[str, Any], int, int]:
    mail = panel.register(mail1, roles=["mail"])
    lists = panel.register(lists1, roles=["lists"], settings={"relay_host": mail1.address})
    account = panel.world.account("acme")
    panel.world.domain(account, "acme.test")
    return account, mail["id"], lists["id"]


def _account_on(
    panel: Panel, lists1: TestHost, slug: str, **quotas: int
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The lists host registered, and an account owning ``<slug>.test``."""
    host = panel.register(lists1, roles=["lists"])
    account = panel.world.account(slug, **quotas)
    panel.world.domain(account, f"{slug}.test")
    return host, account


def _create_list(
    panel: Panel, account: dict[str, Any], address: str, owners: list[str], **fields: Any
) -> dict[str, Any]:
    body = {"account_id": account["id"], "address": address, "owners": owners, **fields}
    return panel.staff.ok("POST", "/lists", 201, json=body)  # type: ignore[no-any-return]


def _apply(panel: Panel, host_id: int) -> list[str]:
    report = panel.reconcile(host_id)
    assert report.result == "applied", report.error
    return str(panel.staff.ok("GET", f"/applies/{report.apply_id}")["log"]).splitlines()


def _post(host: TestHost, sender: str, to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@acme.test>"
    msg.set_content("Hello, list.\n")
    with smtplib.SMTP(host.address, 25, timeout=10) as smtp:
        smtp.send_message(msg)


def _wait_subject(mail1: TestHost, user: str, subject: str, timeout: float = 30) -> list[str]:
    deadline = time.monotonic() + timeout
    while True:
        seen = subjects(mail1, user)
        if any(subject in s for s in seen):
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"{subject!r} never reached {user}; inbox: {seen}")
        time.sleep(0.25)


def _rest(lists1: TestHost, path: str, method: str = "GET", data: Any = None) -> Any:
    """Mailman's REST API called from inside the host (the test's own view, not the panel's)."""
    script = (
        "import configparser, json, sys, urllib.request, base64\n"
        "c = configparser.ConfigParser(interpolation=None, strict=False)\n"
        "c.read('/etc/mailman3/mailman.cfg'); w = c['webservice']\n"
        "a = base64.b64encode(f\"{w['admin_user']}:{w['admin_pass']}\".encode()).decode()\n"
        "body = sys.argv[3].encode() if sys.argv[3] != 'null' else None\n"
        "r = urllib.request.Request('http://127.0.0.1:8001/3.1/' + sys.argv[1], data=body,"
        " method=sys.argv[2], headers={'Authorization': 'Basic ' + a})\n"
        "if body: r.add_header('Content-Type', 'application/json')\n"
        "print(urllib.request.urlopen(r).read().decode() or 'null')\n"
    )
    done = lists1.exec(["python3", "-c", script, path, method, json.dumps(data)], check=True)
    return json.loads(done.stdout)


def _roster(lists1: TestHost, lid: str) -> set[tuple[str, str]]:
    entries = _rest(lists1, f"lists/{lid}/roster/member").get("entries", [])
    entries += _rest(lists1, f"lists/{lid}/roster/owner").get("entries", [])
    entries += _rest(lists1, f"lists/{lid}/roster/moderator").get("entries", [])
    return {(e["email"], e["role"]) for e in entries}


def test_a_post_reaches_the_subscriber_and_a_deleted_list_keeps_its_roster(
    panel: Panel, mail1: TestHost, lists1: TestHost
) -> None:
    account, mail_id, lists_id = _world(panel, mail1, lists1)
    panel.staff.ok(
        "POST",
        "/mailboxes",
        201,
        json={"account_id": account["id"], "address": "reader@acme.test", "password": PASSWORD},
    )
    _apply(panel, mail_id)
    mlist = _create_list(
        panel,
        account,
        "news@lists.acme.test",
        ["boss@acme.test"],
        policy="confirm",
        settings={"subject_prefix": "[acme news] ", "max_message_size": 100},
    )
    started = time.monotonic()
    log = _apply(panel, lists_id)
    first = time.monotonic() - started
    assert "mailman: created list news@lists.acme.test" in log, log
    assert panel.staff.ok("GET", f"/lists/{mlist['id']}")["status"] == "active"
    config = _rest(lists1, "lists/news.lists.acme.test/config")
    assert config["subscription_policy"] == "confirm" and config["max_message_size"] == 100
    owners = _rest(lists1, "lists/news.lists.acme.test/roster/owner")["entries"]
    assert [o["email"] for o in owners] == ["boss@acme.test"]

    panel.staff.ok("POST", f"/lists/{mlist['id']}/members", 201, json={"email": "reader@acme.test"})
    log = _apply(panel, lists_id)
    assert "mailman: subscribed 1 to news@lists.acme.test" in log, log
    members = _rest(lists1, "lists/news.lists.acme.test/roster/member")["entries"]
    assert [m["email"] for m in members] == ["reader@acme.test"]

    subject = f"Konbit list test {uuid.uuid4().hex[:8]}"
    sent = time.monotonic()
    _post(lists1, "reader@acme.test", "news@lists.acme.test", subject)
    seen = _wait_subject(mail1, "reader@acme.test", subject)
    delivered = time.monotonic() - sent
    assert any(s.startswith(f"[acme news] {subject}") for s in seen), seen

    started = time.monotonic()
    again = panel.reconcile(lists_id)
    noop = time.monotonic() - started
    assert again.result == "noop", again.error
    print(f"first apply {first:.2f} s, post to inbox {delivered:.2f} s, no-op {noop:.2f} s")

    panel.staff.ok("DELETE", f"/lists/{mlist['id']}", 202)
    log = _apply(panel, lists_id)
    assert any("archived news@lists.acme.test" in line for line in log), log
    assert panel.staff.get(f"/lists/{mlist['id']}").status_code == 404
    assert _rest(lists1, "lists").get("entries", []) == []
    archive = Path(lists1.path("/var/lib/konbit/archive/lists"))
    kept = [d for d in archive.iterdir() if d.name.startswith("news@lists.acme.test-")]
    assert len(kept) == 1
    roster = (kept[0] / "roster.csv").read_text().splitlines()
    assert roster == ["email,role", "boss@acme.test,owner", "reader@acme.test,member"]
    saved = json.loads((kept[0] / "config.json").read_text())
    assert saved["subject_prefix"] == "[acme news] "


def test_settings_and_roster_follow_the_panel_but_self_subscribers_stay(
    panel: Panel, lists1: TestHost
) -> None:
    host, account = _account_on(panel, lists1, "bravo")
    mlist = _create_list(panel, account, "team@bravo.test", ["boss@bravo.test"], policy="open")
    lid = "team.bravo.test"
    emails = ["a@x.test", "b@x.test", "c@x.test"]
    imported = panel.staff.ok(
        "POST", f"/lists/{mlist['id']}/members/import", json={"emails": [*emails, "a@x.test"]}
    )
    assert imported == {"added": 3, "already": 0}
    log = _apply(panel, host["id"])
    assert "mailman: subscribed 4 to team@bravo.test" in log, log
    assert _roster(lists1, lid) == {("boss@bravo.test", "owner")} | {(e, "member") for e in emails}
    # Someone joins by themselves and a member leaves by themselves (a mail command, a web
    # page): their choice stands; the panel neither removes nor re-subscribes them.
    _rest(lists1, f"lists/{lid}/member/c@x.test", "DELETE")
    _rest(
        lists1,
        "members",
        "POST",
        {
            "list_id": lid,
            "subscriber": "self@y.test",
            "pre_verified": True,
            "pre_confirmed": True,
            "pre_approved": True,
        },
    )
    members = panel.staff.ok("GET", f"/lists/{mlist['id']}/members", params={"q": "b@x"})
    (b,) = members["items"]
    panel.staff.ok("DELETE", f"/lists/{mlist['id']}/members/{b['id']}", 204)
    panel.staff.ok(
        "POST",
        f"/lists/{mlist['id']}/members",
        201,
        json={"email": "mod@bravo.test", "role": "moderator"},
    )
    panel.staff.ok(
        "PATCH",
        f"/lists/{mlist['id']}",
        json={
            "policy": "moderate",
            "settings": {
                "display_name": "Bravo team",
                "reply_to": "list",
                "archive_policy": "private",
            },
        },
    )
    log = _apply(panel, host["id"])
    assert "mailman: configured team@bravo.test" in log, log
    config = _rest(lists1, f"lists/{lid}/config")
    assert config["subscription_policy"] == "confirm_then_moderate"
    assert config["display_name"] == "Bravo team"
    assert config["reply_goes_to_list"] == "point_to_list"
    assert config["archive_policy"] == "private"
    assert _roster(lists1, lid) == {
        ("boss@bravo.test", "owner"),
        ("mod@bravo.test", "moderator"),
        ("a@x.test", "member"),
        ("self@y.test", "member"),
    }
    assert panel.staff.ok("GET", f"/lists/{mlist['id']}")["status"] == "active"
    assert panel.reconcile(host["id"]).result == "noop"
    panel.staff.ok("DELETE", f"/lists/{mlist['id']}", 202)
    _apply(panel, host["id"])


def test_many_lists_cost_two_reads_when_nothing_changed(panel: Panel, lists1: TestHost) -> None:
    host, account = _account_on(panel, lists1, "carol", lists=100)
    n, per_list = 20, 5
    ids = []
    for i in range(n):
        created = _create_list(panel, account, f"l{i}@carol.test", ["o@carol.test"])
        panel.staff.ok(
            "POST",
            f"/lists/{created['id']}/members/import",
            json={"emails": [f"m{j}@z.test" for j in range(per_list)]},
        )
        ids.append(created["id"])
    started = time.monotonic()
    _apply(panel, host["id"])
    first = time.monotonic() - started
    started = time.monotonic()
    report = panel.reconcile(host["id"])
    noop = time.monotonic() - started
    assert report.result == "noop", report.error
    print(
        f"{n} lists x {per_list + 1} roster entries: first apply {first:.2f} s, no-op {noop:.2f} s"
    )
    for list_id in ids:
        panel.staff.ok("DELETE", f"/lists/{list_id}", 202)
    started = time.monotonic()
    _apply(panel, host["id"])
    print(f"{n} lists archived and deleted in {time.monotonic() - started:.2f} s")
    assert _rest(lists1, "lists").get("entries", []) == []


def test_a_lists_stored_data_is_measured_for_usage(panel: Panel, lists1: TestHost) -> None:
    from panel.usage.service import collect_host

    lists, account = _account_on(panel, lists1, "meter")
    mlist = _create_list(panel, account, "talk@meter.test", ["o@meter.test"])
    _apply(panel, lists["id"])
    data = Path(lists1.path("/var/lib/mailman3/lists/talk.meter.test"))
    assert data.is_dir()
    (data / "konbit-usage-probe").write_bytes(b"x" * 50_000)
    report = collect_host(panel.world.db, panel.settings, lists["id"], panel.plugins)
    assert report.ok, report.error
    rows = panel.staff.ok("GET", "/usage", params={"account_id": account["id"], "detail": "true"})[
        "items"
    ]
    (row,) = [r for r in rows if r["metric"] == "list_archive_bytes"]
    assert (row["object_type"], row["object_id"]) == ("list", mlist["id"])
    du = lists1.exec(["du", "-s", "-B1", "--", "/var/lib/mailman3/lists/talk.meter.test"]).stdout
    assert row["peak"] == int(du.split()[0]) >= 50_000
