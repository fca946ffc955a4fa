"""DNS end to end through the panel: a member's site, mailbox and records become a zone
that two real DNS servers (Knot; dns1 primary, dns2 secondary) answer over port 53, asked
with dnspython; a change reaches both within seconds; a move of the site to another web
host moves its A record; a zone the servers' checker refuses keeps its old version."""

from __future__ import annotations

import time
from typing import Any

import pytest

from panel.dns.models import DnsRecord
from panel.testhosts import TestHost
from tests.integration.conftest import Panel
from tests.integration.test_dns_knot import answer, ask
from tests.integration.test_lifecycle import _run

pytestmark = pytest.mark.integration


def _dns(panel: Panel, dns1: TestHost, dns2: TestHost) -> list[dict[str, Any]]:
    hosts = [
        panel.register(dns1, roles=["dns"], settings={"dns_ns_name": "ns1.provider.test",
                                                      "dns_primary": True}),
        panel.register(dns2, roles=["dns"], settings={"dns_ns_name": "ns2.provider.test"}),
    ]  # fmt: skip
    return hosts


def _converge(panel: Panel, hosts: list[dict[str, Any]]) -> list[float]:
    """Reconcile the DNS hosts (primary first); seconds each apply took."""
    took = []
    for h in hosts:
        t = time.monotonic()
        report = panel.reconcile(h["id"])
        assert report.result in ("applied", "noop"), report
        took.append(time.monotonic() - t)
    return took


def _until(check: Any, timeout: float = 10.0) -> float:
    start = time.monotonic()
    while not check():
        assert time.monotonic() - start < timeout, "not served in time"
        time.sleep(0.05)
    return time.monotonic() - start


def test_a_members_zone_is_served_by_both_servers_and_follows_changes(
    panel: Panel, web1: TestHost, web2: TestHost, mail1: TestHost, dns1: TestHost, dns2: TestHost
) -> None:
    web = panel.register(web1)
    panel.register(mail1, roles=["mail"])
    servers = _dns(panel, dns1, dns2)
    account = panel.world.account("echo")
    domain = panel.world.domain(account, "echo.test")
    member = panel.world.member(account)
    owner = {"account_id": account["id"]}
    body = {**owner, "domain": "www.echo.test", "aliases": ["echo.test"]}
    site = member.ok("POST", "/sites", 201, json=body)
    body = {**owner, "address": "info@echo.test", "password": "12345678"}
    member.ok("POST", "/mailboxes", 201, json=body)
    url = f"/domains/{domain['id']}/records"
    member.ok("POST", url, 201, json={"type": "TXT", "name": "@", "text": "hello=world"})
    member.ok("POST", url, 201, json={"type": "CNAME", "name": "docs", "target": "www.echo.test"})
    assert panel.reconcile(web["id"]).result == "applied"
    first = _converge(panel, servers)
    print(f"first apply: primary {first[0]:.2f}s, secondary {first[1]:.2f}s")

    mx = f"mx-{mail1.name}.echo.test."
    for host in (dns1, dns2):
        assert answer(host, "www.echo.test", "A") == {web1.address}
        assert answer(host, "echo.test", "A") == {web1.address}
        assert answer(host, "echo.test", "MX") == {f"10 {mx}"}
        assert answer(host, mx, "A") == {mail1.address}
        assert answer(host, "echo.test", "TXT") == {'"v=spf1 mx ~all"', '"hello=world"'}
        assert answer(host, "_dmarc.echo.test", "TXT") == {'"v=DMARC1; p=none"'}
        assert answer(host, "_imaps._tcp.echo.test", "SRV") == {f"0 1 993 {mx}"}
        assert answer(host, "docs.echo.test", "CNAME") == {"www.echo.test."}
        assert answer(host, "echo.test", "NS") == {"ns1.provider.test.", "ns2.provider.test."}
    assert member.ok("GET", f"/domains/{domain['id']}/dns")["status"] == "active"

    # A member's new record: on both servers within seconds of the click.
    clicked = time.monotonic()
    member.ok("POST", url, 201, json={"type": "A", "name": "new", "address": "192.0.2.44"})
    _converge(panel, servers)
    for host in (dns1, dns2):
        _until(lambda h=host: answer(h, "new.echo.test", "A") == {"192.0.2.44"})
    print(f"click to served by both: {time.monotonic() - clicked:.2f}s")

    # The site moves to web2: its A records follow.
    web_b = panel.register(web2, settings={"web_server": "apache2"})
    move = {"host_id": web_b["id"]}
    task = panel.staff.ok("POST", f"/sites/{site['id']}/migrate", 202, json=move)
    assert _run(panel, task)["status"] == "succeeded"
    _converge(panel, servers)
    for host in (dns1, dns2):
        _until(lambda h=host: answer(h, "www.echo.test", "A") == {web2.address})

    # A record that got past the API by another way (here: the database) and that the
    # servers' checker refuses: the zone is failed with the reason, the old one still served.
    with panel.world.db.session() as session:
        session.add(DnsRecord(account_id=account["id"], domain_id=domain["id"], name="www",
                              type="CNAME", ttl=300, data="elsewhere.test."))  # fmt: skip
        session.commit()
    report = panel.reconcile(servers[0]["id"])
    assert report.result == "failed", report
    got = panel.staff.ok("GET", f"/domains/{domain['id']}")
    assert got["status"] == "failed" and "www" in (got["status_reason"] or ""), got
    again = panel.reconcile(servers[0]["id"])  # the other zones' apply goes on
    assert again.result in ("applied", "noop"), again
    assert answer(dns1, "www.echo.test", "A") == {web2.address}
    assert answer(dns1, "new.echo.test", "A") == {"192.0.2.44"}
    # The bad record removed: the zone is tried again, and served again.
    with panel.world.db.session() as session:
        row = session.query(DnsRecord).filter_by(type="CNAME", name="www").one()
        session.delete(row)
        session.commit()
    _converge(panel, servers)
    assert panel.staff.ok("GET", f"/domains/{domain['id']}")["status"] == "active"


def test_a_signed_zone_answers_with_signatures(
    panel: Panel, web1: TestHost, dns1: TestHost, dns2: TestHost
) -> None:
    panel.register(web1)
    servers = _dns(panel, dns1, dns2)
    account = panel.world.account("foxtrot")
    domain = panel.world.domain(account, "foxtrot.test")
    member = panel.world.member(account)
    member.ok("POST", "/sites", 201, json={"account_id": account["id"], "domain": "foxtrot.test"})
    member.ok("PATCH", f"/domains/{domain['id']}/dns", json={"dnssec": True})
    _converge(panel, servers)
    def signed(host: TestHost) -> bool:
        response = ask(host, "foxtrot.test", "A", dnssec=True)
        return any(rrset.rdtype == 46 for rrset in response.answer)  # RRSIG

    for host in (dns1, dns2):
        _until(lambda h=host: signed(h))
        assert answer(host, "foxtrot.test", "A") == {web1.address}
    # Managed elsewhere: the servers stop answering for it.
    member.ok("PATCH", f"/domains/{domain['id']}/dns", json={"hosted": False})
    _converge(panel, servers)
    for host in (dns1, dns2):
        _until(lambda h=host: ask(h, "foxtrot.test", "A").rcode() == 5)  # REFUSED
