"""DKIM end to end on real hosts: a mail domain's first mailbox makes its key on the mail
host (mail1), the key's record is served by both DNS servers (dns1 primary, dns2), mail a
member sends by SMTP submission is signed by OpenDKIM and verifies with dkimpy against the
record asked of dns1 over port 53; a rotation publishes a second key that new mail is
signed with, the first stays published until its time, then goes from zone and host."""

from __future__ import annotations

import datetime as dt
import email
import smtplib
import ssl
import time
from email.message import EmailMessage
from typing import Any

import dkim
import dns.message
import dns.query
import dns.rdatatype
import pytest
from sqlalchemy import select, update

from panel.core.db import utcnow
from panel.dns import dkim as keys
from panel.tasks.models import Task
from panel.testhosts import TestHost
from tests.integration.conftest import Panel
from tests.integration.test_dns_knot import answer
from tests.integration.test_lifecycle import _run
from tests.integration.test_mail import PASSWORD, imap, send

pytestmark = pytest.mark.integration


def _txt(host: TestHost, name: str) -> bytes | None:
    """A TXT's strings joined, as dkimpy wants them, asked of ``host`` over UDP."""
    query = dns.message.make_query(name, "TXT")
    response = dns.query.udp(query, host.address, timeout=3)
    for rrset in response.answer:
        if rrset.rdtype == dns.rdatatype.TXT:
            return b"".join(next(iter(rrset)).strings)
    return None


def _dnsfunc(host: TestHost) -> Any:
    def get(name: bytes, timeout: float = 5) -> bytes | None:
        return _txt(host, name.decode().rstrip("."))

    return get


def _until(check: Any, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not in time"
        time.sleep(0.05)
    return time.monotonic() - start


def _submit(host: TestHost, user: str, to: str, subject: str) -> None:
    """As a member's mail client: port 587, STARTTLS, AUTH as the mailbox."""
    msg = EmailMessage()
    msg["From"] = user
    msg["To"] = to
    msg["Subject"] = subject
    msg["Message-ID"] = email.utils.make_msgid(domain=user.partition("@")[2])
    msg.set_content("signed, we hope\n")
    try:
        with smtplib.SMTP(host.address, 587, timeout=10) as smtp:
            smtp.starttls(context=_unverified())
            smtp.login(user, PASSWORD)
            smtp.send_message(msg)
    except Exception:
        print(_syslog(host))
        raise


def _unverified() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the test host's self-signed certificate
    return context


def _syslog(host: TestHost) -> str:
    log = host.path("/var/log/syslog")
    return log.read_text()[-6000:] if log.exists() else "(no syslog)"


def _fetch(host: TestHost, user: str, subject: str, timeout: float = 15.0) -> bytes:
    """The whole message with that subject, as the recipient's IMAP client reads it."""
    deadline = time.monotonic() + timeout
    while True:
        conn = imap(host, user)
        try:
            conn.select("INBOX", readonly=True)
            _, data = conn.search(None, "SUBJECT", f'"{subject}"')
            if data[0]:
                _, parts = conn.fetch(data[0].split()[-1], "(BODY.PEEK[])")
                assert isinstance(parts[0], tuple)
                return bytes(parts[0][1])
        finally:
            conn.logout()
        if time.monotonic() > deadline:
            raise AssertionError(f"{user} never received {subject!r}\n{_syslog(host)}")
        time.sleep(0.2)


def _signature(raw: bytes) -> dict[str, str]:
    header = email.message_from_bytes(raw)["DKIM-Signature"]
    assert header, f"no DKIM-Signature: {raw[:2000]!r}"
    tags = (t.strip().partition("=") for t in "".join(str(header).split()).split(";") if t)
    return {k: v for k, _, v in tags}


def _key_task(panel: Panel, domain_id: int) -> dict[str, Any]:
    found = panel.staff.ok("GET", "/tasks", params={"kind": "dkim-key"})["items"]
    mine = [t for t in found if t["params"].get("domain_id") == domain_id]
    assert len(mine) == 1, found
    return mine[0]  # type: ignore[no-any-return]


def test_mail_is_signed_with_a_key_made_on_the_host_and_published_then_rotated(
    panel: Panel, mail1: TestHost, dns1: TestHost, dns2: TestHost
) -> None:
    mail = panel.register(mail1, roles=["mail"])
    servers = [
        panel.register(dns1, roles=["dns"], settings={"dns_ns_name": "ns1.provider.test",
                                                      "dns_primary": True}),
        panel.register(dns2, roles=["dns"], settings={"dns_ns_name": "ns2.provider.test"}),
    ]  # fmt: skip
    account = panel.world.account("golf")
    domain = panel.world.domain(account, "golf.test")
    member = panel.world.member(account)
    for local in ("alice", "bob"):
        body = {"account_id": account["id"], "address": f"{local}@golf.test", "password": PASSWORD}
        member.ok("POST", "/mailboxes", 201, json=body)
    # The first mailbox queued the domain's key task; the second did not queue another.
    task = _key_task(panel, domain["id"])
    assert panel.reconcile(mail["id"]).result == "applied"

    done = _run(panel, task)
    assert done["status"] == "succeeded", done["log"]
    print(f"first key: made, published on 2 DNS servers and signing in {done['seconds']:.2f}s")
    print(done["log"])
    selector = done["result"]["selector"]
    assert selector == "k" + dt.datetime.now(dt.UTC).strftime("%Y%m%d")
    name = f"{selector}._domainkey.golf.test"
    (key,) = member.ok("GET", f"/domains/{domain['id']}/dkim")["items"]
    assert (key["selector"], key["state"], key["name"]) == (selector, "active", name)
    # The private key is on the mail host alone: opendkim's, 0600, outside the tree.
    private = mail1.path(f"/var/lib/konbit/dkim/golf.test/{selector}.private")
    stat = private.stat()
    assert oct(stat.st_mode & 0o777) == "0o600"
    assert stat.st_uid == int(mail1.exec(["id", "-u", "opendkim"], check=True).stdout)
    assert "PRIVATE KEY" not in str(panel.staff.ok("GET", f"/domains/{domain['id']}/dkim"))
    assert panel.reconcile(mail["id"]).result == "noop"  # submission, milter: all in place
    # Both DNS servers answer the record (the secondary within moments of the primary).
    want = "".join(key["data"][1:-1].split('" "'))  # the zone's strings, joined
    assert want.startswith("v=DKIM1; k=rsa; p=MII")
    assert _txt(dns1, name) == want.encode()
    _until(lambda: _txt(dns2, name) == want.encode())
    assert answer(dns1, "golf.test", "TXT") == {'"v=spf1 mx ~all"'}

    # A member's mail client sends through submission: the message is signed, and
    # dkimpy verifies it against the record dns1 serves.
    started = time.monotonic()
    _submit(mail1, "alice@golf.test", "bob@golf.test", "first signed letter")
    raw = _fetch(mail1, "bob@golf.test", "first signed letter")
    print(f"submission to IMAP: {time.monotonic() - started:.2f}s")
    tags = _signature(raw)
    assert (tags["d"], tags["s"], tags["a"]) == ("golf.test", selector, "rsa-sha256")
    assert dkim.verify(raw, dnsfunc=_dnsfunc(dns1)), raw[:1500]
    assert dkim.verify(raw, dnsfunc=_dnsfunc(dns2))
    # A tampered body no longer verifies: the check is real.
    assert not dkim.verify(raw.replace(b"signed, we hope", b"signed, we hop"),
                           dnsfunc=_dnsfunc(dns1))  # fmt: skip

    # A milter that is down loses no mail: it goes through unsigned.
    mail1.exec(["systemctl", "stop", "opendkim"], check=True)
    try:
        _submit(mail1, "alice@golf.test", "bob@golf.test", "while the milter is down")
        raw_down = _fetch(mail1, "bob@golf.test", "while the milter is down")
        assert "DKIM-Signature" not in email.message_from_bytes(raw_down)
    finally:
        mail1.exec(["systemctl", "start", "opendkim"], check=True)

    # Submission wants a login, even for a local recipient; mail from outside (port 25)
    # is delivered and not signed.
    with smtplib.SMTP(mail1.address, 587, timeout=10) as smtp:
        smtp.starttls(context=_unverified())
        with pytest.raises(smtplib.SMTPRecipientsRefused):
            smtp.sendmail("alice@golf.test", ["bob@golf.test"], b"Subject: no login\r\n\r\nx")
    send(mail1, "bob@golf.test", "from outside")
    assert "DKIM-Signature" not in email.message_from_bytes(
        _fetch(mail1, "bob@golf.test", "from outside")
    )

    # Another account's mailbox on the same host may not send as golf.test (it would be
    # signed with golf.test's key): its envelope sender is refused (postfix says so at
    # RCPT, smtpd_delay_reject).
    other = panel.world.account("hotel")
    hotel = panel.world.domain(other, "hotel.test")
    body = {"account_id": other["id"], "address": "eve@hotel.test", "password": PASSWORD}
    panel.world.member(other).ok("POST", "/mailboxes", 201, json=body)
    assert _run(panel, _key_task(panel, hotel["id"]))["status"] == "succeeded"
    assert panel.reconcile(mail["id"]).result in ("applied", "noop")
    with smtplib.SMTP(mail1.address, 587, timeout=10) as smtp:
        smtp.starttls(context=_unverified())
        smtp.login("eve@hotel.test", PASSWORD)
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            smtp.sendmail("alice@golf.test", ["bob@golf.test"], b"Subject: spoof\r\n\r\nx")
        code, text = refused.value.recipients["bob@golf.test"]
        assert code == 553 and b"not owned by user eve@hotel.test" in text, text
        smtp.sendmail("eve@hotel.test", ["bob@golf.test"], b"Subject: own\r\n\r\nx")

    # Rotation: a second key, published, then signing; the first stays in the zone.
    rotated = member.ok("POST", f"/domains/{domain['id']}/dkim", 202)
    assert member.post(f"/domains/{domain['id']}/dkim").status_code == 409  # one at a time
    done = _run(panel, rotated)
    assert done["status"] == "succeeded", done["log"]
    print(f"rotation: {done['seconds']:.2f}s")
    second = done["result"]["selector"]
    assert second == f"{selector}b"
    got = {k["selector"]: k for k in member.ok("GET", f"/domains/{domain['id']}/dkim")["items"]}
    assert got[second]["state"] == "active" and got[selector]["state"] == "retired"
    assert got[selector]["retire_after"] is not None
    for host in (dns1, dns2):
        _until(lambda h=host: _txt(h, f"{second}._domainkey.golf.test") is not None)
        assert _txt(host, name) == want.encode()  # the old one still published
    _submit(mail1, "alice@golf.test", "bob@golf.test", "second signed letter")
    raw2 = _fetch(mail1, "bob@golf.test", "second signed letter")
    assert _signature(raw2)["s"] == second
    assert dkim.verify(raw2, dnsfunc=_dnsfunc(dns1))
    assert dkim.verify(raw, dnsfunc=_dnsfunc(dns1))  # mail signed before still verifies
    # Mail the host sends itself (sendmail: cron, bounces) is signed too.
    local = "From: alice@golf.test\nTo: bob@golf.test\nSubject: local letter\n\nfrom cron\n"
    mail1.exec(["/usr/sbin/sendmail", "-t", "-f", "alice@golf.test"], input=local, check=True)
    raw3 = _fetch(mail1, "bob@golf.test", "local letter")
    assert _signature(raw3)["s"] == second
    assert dkim.verify(raw3, dnsfunc=_dnsfunc(dns2))

    # Past its time the old key goes: from the zone, then from the mail host.
    with panel.world.db.session() as session:
        session.execute(
            update(keys.DkimKey)
            .where(keys.DkimKey.selector == selector)
            .values(retire_after=utcnow() - dt.timedelta(minutes=1))
        )
        started_ids = keys.due(session)
        session.commit()
        (drop_id,) = started_ids
        drop = session.get_one(Task, drop_id)
        assert drop.kind == "dkim-drop"
    done = _run(panel, {"id": drop_id})
    assert done["status"] == "succeeded", done["log"]
    assert not private.exists()
    assert mail1.path(f"/var/lib/konbit/dkim/golf.test/{second}.private").exists()
    for s in servers:
        assert panel.reconcile(s["id"]).result in ("applied", "noop")
    for host in (dns1, dns2):
        _until(lambda h=host: _txt(h, name) is None)
    assert [k["selector"] for k in member.ok("GET", f"/domains/{domain['id']}/dkim")["items"]] \
        == [second]  # fmt: skip
    # Nothing left to do: the round starts nothing more.
    with panel.world.db.session() as session:
        assert keys.due(session) == []
        assert session.scalars(select(Task).where(Task.status == "queued")).all() == []
