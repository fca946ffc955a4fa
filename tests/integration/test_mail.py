"""Mailboxes and aliases on a real mail host, as a member sees them: SMTP in, IMAP out."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest

from panel.testhosts import TestHost
from tests.integration.conftest import Panel

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"


def _mail_world(panel: Panel, mail1: TestHost, slug: str = "acme") -> tuple[dict[str, Any], int]:
    host = panel.register(mail1, roles=["mail"])
    account = panel.world.account(slug)
    panel.world.domain(account, f"{slug}.test")
    return account, host["id"]


def _mailbox(panel: Panel, account: dict[str, Any], local: str, **extra: Any) -> dict[str, Any]:
    body = {
        "account_id": account["id"],
        "address": f"{local}@{account['slug']}.test",
        "password": PASSWORD,
        **extra,
    }
    return panel.staff.ok("POST", "/mailboxes", 201, json=body)  # type: ignore[no-any-return]


def _apply(panel: Panel, host_id: int) -> None:
    report = panel.reconcile(host_id)
    assert report.result == "applied", report.error


def send(host: TestHost, to: str, subject: str, body: str = "hello\n") -> None:
    msg = EmailMessage()
    msg["From"] = "sender@elsewhere.test"
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content(body)
    with smtplib.SMTP(host.address, 25, timeout=10) as smtp:
        try:
            smtp.send_message(msg)
        except Exception:
            print(Path(host.path("/var/log/syslog")).read_text()[-5000:])
            raise


def imap(host: TestHost, user: str, password: str = PASSWORD) -> imaplib.IMAP4:
    conn = imaplib.IMAP4(host.address, 143, timeout=10)
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test host's self-signed certificate
    conn.starttls(context)
    try:
        conn.login(user, password)
    except Exception:
        conn.logout()
        raise
    return conn


def subjects(host: TestHost, user: str, password: str = PASSWORD) -> list[str]:
    conn = imap(host, user, password)
    try:
        conn.select("INBOX", readonly=True)
        _, data = conn.search(None, "ALL")
        out = []
        for num in data[0].split():
            _, parts = conn.fetch(num, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
            header = parts[0][1] if isinstance(parts[0], tuple) else b""
            out.append(header.decode().partition(":")[2].strip())
        return out
    finally:
        conn.logout()


def wait_subject(host: TestHost, user: str, subject: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while subject not in (seen := subjects(host, user)):
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} never received {subject!r}; inbox: {seen}")
        time.sleep(0.1)


def test_mail_sent_by_smtp_is_read_by_imap_with_the_mailbox_password(
    panel: Panel, mail1: TestHost
) -> None:
    account, host_id = _mail_world(panel, mail1)
    box = _mailbox(panel, account, "alice")
    _apply(panel, host_id)
    assert panel.staff.ok("GET", f"/mailboxes/{box['id']}")["status"] == "active"
    send(mail1, "alice@acme.test", "first letter")
    wait_subject(mail1, "alice@acme.test", "first letter")
    with pytest.raises(imaplib.IMAP4.error):
        imap(mail1, "alice@acme.test", "wrong password")
    # The password is stored only as the hash dovecot verified above.
    users = Path(mail1.path("/etc/konbit/live/mail/dovecot/users")).read_text()
    assert PASSWORD not in users and "{ARGON2ID}$argon2id$" in users
    # The member changes the password: the new one works at once, the old one no longer.
    member = panel.world.member(account)
    member.ok("PATCH", f"/mailboxes/{box['id']}", json={"password": "a new secret phrase"})
    _apply(panel, host_id)
    assert subjects(mail1, "alice@acme.test", "a new secret phrase") == ["first letter"]
    with pytest.raises(imaplib.IMAP4.error):
        imap(mail1, "alice@acme.test", PASSWORD)
    assert panel.reconcile(host_id).result == "noop"


def test_aliases_forward_to_each_destination_and_the_catch_all_catches(
    panel: Panel, mail1: TestHost
) -> None:
    account, host_id = _mail_world(panel, mail1, "bravo")
    _mailbox(panel, account, "ann")
    _mailbox(panel, account, "ben")
    for address, destinations in (
        ("team@bravo.test", ["ann@bravo.test", "ben@bravo.test"]),
        ("@bravo.test", ["ben@bravo.test"]),
    ):
        panel.staff.ok(
            "POST",
            "/mail-aliases",
            201,
            json={"account_id": account["id"], "address": address, "destinations": destinations},
        )
    _apply(panel, host_id)
    send(mail1, "team@bravo.test", "to the team")
    send(mail1, "nobody-here@bravo.test", "to the catch-all")
    send(mail1, "ann@bravo.test", "to ann alone")
    wait_subject(mail1, "ann@bravo.test", "to the team")
    wait_subject(mail1, "ben@bravo.test", "to the team")
    wait_subject(mail1, "ben@bravo.test", "to the catch-all")
    wait_subject(mail1, "ann@bravo.test", "to ann alone")
    # The catch-all does not swallow a real mailbox's mail.
    assert "to ann alone" not in subjects(mail1, "ben@bravo.test")
    assert "to the catch-all" not in subjects(mail1, "ann@bravo.test")


def test_a_full_mailbox_refuses_mail_at_smtp_time(panel: Panel, mail1: TestHost) -> None:
    account, host_id = _mail_world(panel, mail1, "charlie")
    _mailbox(panel, account, "small", quota_mb=1)
    _apply(panel, host_id)
    send(mail1, "small@charlie.test", "fits")
    wait_subject(mail1, "small@charlie.test", "fits")
    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        send(mail1, "small@charlie.test", "too big", "x" * 76 + "\n" * 20_000 + "y" * 1_500_000)
    code, message = refused.value.recipients["small@charlie.test"]
    assert code == 552 and b"full" in message.lower()
    assert subjects(mail1, "small@charlie.test") == ["fits"]


def test_a_disabled_mailbox_keeps_its_mail_but_nobody_logs_in(
    panel: Panel, mail1: TestHost
) -> None:
    account, host_id = _mail_world(panel, mail1, "delta")
    box = _mailbox(panel, account, "paused")
    _apply(panel, host_id)
    panel.staff.ok("PATCH", f"/mailboxes/{box['id']}", json={"enabled": False})
    _apply(panel, host_id)
    send(mail1, "paused@delta.test", "while away")
    with pytest.raises(imaplib.IMAP4.error):
        imap(mail1, "paused@delta.test")
    panel.staff.ok("PATCH", f"/mailboxes/{box['id']}", json={"enabled": True})
    _apply(panel, host_id)
    wait_subject(mail1, "paused@delta.test", "while away")


def test_deleting_a_mailbox_archives_its_mail_first(panel: Panel, mail1: TestHost) -> None:
    account, host_id = _mail_world(panel, mail1, "echo")
    box = _mailbox(panel, account, "leaving")
    _apply(panel, host_id)
    send(mail1, "leaving@echo.test", "keep me")
    wait_subject(mail1, "leaving@echo.test", "keep me")
    panel.staff.ok("DELETE", f"/mailboxes/{box['id']}", 202)
    _apply(panel, host_id)
    assert panel.staff.get(f"/mailboxes/{box['id']}").status_code == 404
    assert not Path(mail1.path("/var/vmail/echo.test/leaving")).exists()
    archived = list(Path(mail1.path("/var/lib/konbit/archive/mail/echo.test")).glob("leaving-*"))
    assert archived, "the Maildir was not archived"
    mails = [p for a in archived for p in (a / "Maildir").rglob("*") if p.is_file()]
    assert any(b"keep me" in p.read_bytes() for p in mails)
    # The address is gone from the maps: postfix refuses it now.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mail1, "leaving@echo.test", "too late")


def test_a_failed_check_keeps_the_previous_maps_in_force(panel: Panel, mail1: TestHost) -> None:
    account, host_id = _mail_world(panel, mail1, "foxtrot")
    _mailbox(panel, account, "first")
    _apply(panel, host_id)
    # Break the host under the panel: the map builder is gone, so the check fails.
    tool = "/usr/sbin/postmap"
    mail1.exec(["mv", tool, f"{tool}.away"], check=True)
    try:
        second = _mailbox(panel, account, "second")
        report = panel.reconcile(host_id)
        assert report.result == "failed" and "postmap" in (report.error or "")
        box = panel.staff.ok("GET", f"/mailboxes/{second['id']}")
        assert box["status"] == "pending" and "postmap" in box["status_reason"]
        host = panel.staff.ok("GET", f"/hosts/{host_id}")
        assert host["health"] == "failed"
        maps = Path(mail1.path("/etc/konbit/live/mail/postfix/mailboxes")).read_text()
        assert "first@foxtrot.test" in maps and "second@" not in maps
    finally:
        mail1.exec(["mv", f"{tool}.away", tool], check=True)
    send(mail1, "first@foxtrot.test", "still served")
    wait_subject(mail1, "first@foxtrot.test", "still served")
    _apply(panel, host_id)
    send(mail1, "second@foxtrot.test", "now served")
    wait_subject(mail1, "second@foxtrot.test", "now served")
