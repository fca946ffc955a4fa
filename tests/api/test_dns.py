"""DNS through the API: each zone's records derived from the sites and mail Konbit hosts,
members' own records checked field by field and against the zone, tenancy, and the DNS
servers marked dirty by what changes a zone (and by nothing else)."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from panel.dns.zones import servers, zones_for
from panel.hosts.models import Host
from tests.conftest import World


def _field(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["errors"][0]["field"])


@pytest.fixture
def zone(world: World) -> dict[str, Any]:
    """alpha.test: a site www.alpha.test (alias alpha.test) on web, a mailbox on mail,
    two DNS servers (dns2 marked primary)."""
    web = world.host(["web"])
    mail = world.host(["mail"])
    world.host(["dns"], settings={"dns_ns_name": "ns1.provider.test"})
    world.host(["dns"], settings={"dns_ns_name": "ns2.provider.test", "dns_primary": True})
    account = world.account("alpha")
    domain = world.domain(account, "alpha.test")
    member = world.member(account)
    site = member.ok(
        "POST", "/sites", 201,
        json={"account_id": account["id"], "domain": "www.alpha.test", "aliases": ["alpha.test"]},
    )  # fmt: skip
    member.ok(
        "POST", "/mailboxes", 201,
        json={"account_id": account["id"], "address": "info@alpha.test", "password": "12345678"},
    )  # fmt: skip
    return {"web": web, "mail": mail, "domain": domain, "member": member, "site": site}


def _records(api: Any, domain_id: int) -> set[tuple[str, str, str, str]]:
    items = api.ok("GET", f"/domains/{domain_id}/records")["items"]
    return {(r["name"], r["type"], r["data"], r["source"]) for r in items}


def test_a_zone_has_the_records_of_what_konbit_hosts(world: World, zone: dict[str, Any]) -> None:
    web, mail, member = zone["web"]["address"], zone["mail"]["address"], zone["member"]
    site = f"site {zone['site']['id']}"
    got = _records(member, zone["domain"]["id"])
    assert got == {
        ("@", "NS", "ns2.provider.test.", "dns servers"),  # the primary first
        ("@", "NS", "ns1.provider.test.", "dns servers"),
        ("www", "A", web, site),
        ("@", "A", web, site),
        ("mx-h2", "A", mail, "mail host"),
        ("@", "MX", "10 mx-h2.alpha.test.", "mail"),
        ("@", "TXT", '"v=spf1 mx ~all"', "spf"),
        ("_dmarc", "TXT", '"v=DMARC1; p=none"', "dmarc"),
        ("_imaps._tcp", "SRV", "0 1 993 mx-h2.alpha.test.", "mail"),
        ("_submission._tcp", "SRV", "0 1 587 mx-h2.alpha.test.", "mail"),
    }
    got = member.ok("GET", f"/domains/{zone['domain']['id']}/dns")
    assert got == {
        "domain_id": zone["domain"]["id"], "name": "alpha.test", "hosted": True,
        "dnssec": False, "name_servers": ["ns2.provider.test", "ns1.provider.test"],
        "status": "pending",
    }  # fmt: skip
    with world.db.session() as session:
        (view,) = zones_for(session)
        assert view.name == "alpha.test" and len(view.records) == 8  # NS: the server's own
        assert [s.ns_name for s in servers(session) if s.primary] == ["ns2.provider.test"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"type": "A", "name": "blog", "address": "192.0.2.7"}, "192.0.2.7"),
        ({"type": "AAAA", "name": "v6", "address": "2001:db8::1"}, "2001:db8::1"),
        ({"type": "CNAME", "name": "docs", "target": "Pages.Example.ORG"}, "pages.example.org."),
        ({"type": "MX", "name": "lists", "preference": 5, "exchange": "mx.example.net."},
         "5 mx.example.net."),
        ({"type": "TXT", "name": "@", "text": "google-site-verification=abc"},
         '"google-site-verification=abc"'),
        ({"type": "TXT", "name": "long", "text": "x" * 300}, f'"{"x" * 255}" "{"x" * 45}"'),
        ({"type": "SRV", "name": "_sip._tcp", "port": 5060, "target": "sip.example.net"},
         "0 0 5060 sip.example.net."),
        ({"type": "CAA", "name": "@", "tag": "issue", "value": "letsencrypt.org"},
         '0 issue "letsencrypt.org"'),
    ],
)  # fmt: skip
def test_members_add_records_of_every_type(
    zone: dict[str, Any], body: dict[str, Any], text: str
) -> None:
    member, domain_id = zone["member"], zone["domain"]["id"]
    made = member.ok("POST", f"/domains/{domain_id}/records", 201, json=body)
    assert (made["type"], made["data"], made["source"], made["ttl"]) == (
        body["type"], text, "member", 3600,
    )  # fmt: skip
    assert (body["name"], body["type"], text, "member") in _records(member, domain_id)
    assert member.ok("GET", f"/dns-records/{made['id']}")["data"] == text


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"type": "A", "name": "bad name", "address": "192.0.2.7"}, "A.name"),
        ({"type": "A", "name": "a..b", "address": "192.0.2.7"}, "A.name"),
        ({"type": "A", "name": "x\n@ NS evil.test.", "address": "192.0.2.7"}, "A.name"),
        ({"type": "A", "name": "ok", "address": "999.1.1.1"}, "A.address"),
        ({"type": "A", "name": "ok", "address": "192.0.2.7", "ttl": 5}, "A.ttl"),
        ({"type": "AAAA", "name": "ok", "address": "192.0.2.7"}, "AAAA.address"),
        ({"type": "TXT", "name": "ok", "text": 'a" NS evil.test. "'}, "TXT.text"),
        ({"type": "TXT", "name": "ok", "text": "a\\"}, "TXT.text"),
        ({"type": "TXT", "name": "ok", "text": "line\nbreak"}, "TXT.text"),
        ({"type": "CNAME", "name": "ok", "target": "not a host"}, "CNAME.target"),
        ({"type": "MX", "name": "ok", "exchange": "mx.example.net", "preference": 70000},
         "MX.preference"),
        ({"type": "CAA", "name": "@", "tag": "issue", "value": 'ca"x'}, "CAA.value"),
        ({"type": "CAA", "name": "@", "tag": "evil", "value": "ca"}, "CAA.tag"),
        ({"type": "NS", "name": "sub", "target": "ns.evil.test"}, "type"),
        ({"type": "SRV", "name": "sip", "port": 5060, "target": "sip.example.net"}, "name"),
        ({"type": "CNAME", "name": "@", "target": "example.net"}, "name"),
        ({"type": "A", "name": "x" * 63 + "." + "y" * 63 + "." + "z" * 63, "address": "1.2.3.4"},
         "A.name"),
    ],
)  # fmt: skip
def test_hostile_records_are_refused_naming_the_field(
    zone: dict[str, Any], body: dict[str, Any], field: str
) -> None:
    r = zone["member"].post(f"/domains/{zone['domain']['id']}/records", json=body)
    assert _field(r) == field, r.text


def test_records_that_clash_with_the_zone_are_refused(zone: dict[str, Any]) -> None:
    member, domain_id = zone["member"], zone["domain"]["id"]
    url = f"/domains/{domain_id}/records"
    r = member.post(url, json={"type": "A", "name": "www", "address": "192.0.2.9"})
    assert r.status_code == 409 and "www.alpha.test is a site on this provider" in r.text
    r = member.post(url, json={"type": "CNAME", "name": "_dmarc", "target": "x.example.net"})
    assert r.status_code == 409 and "a CNAME must be alone" in r.text
    cname = member.ok("POST", url, 201, json={"type": "CNAME", "name": "d", "target": "x.net."})
    r = member.post(url, json={"type": "TXT", "name": "d", "text": "hello"})
    assert r.status_code == 409 and "is a CNAME to x.net." in r.text
    r = member.post(url, json={"type": "CNAME", "name": "d", "target": "x.net."})
    assert r.status_code == 409
    # Replacing a record is checked against the others, not against itself.
    got = member.ok("PUT", f"/dns-records/{cname['id']}", json={
        "type": "CNAME", "name": "d", "target": "y.net"})  # fmt: skip
    assert got["data"] == "y.net."


def test_a_members_mx_or_spf_replaces_konbits(zone: dict[str, Any]) -> None:
    member, domain_id = zone["member"], zone["domain"]["id"]
    url = f"/domains/{domain_id}/records"
    member.ok("POST", url, 201, json={"type": "MX", "exchange": "mx.elsewhere.net"})
    member.ok("POST", url, 201, json={"type": "TXT", "text": "v=spf1 include:elsewhere.net -all"})
    member.ok("POST", url, 201, json={"type": "TXT", "text": "unrelated=1"})
    got = {(n, t, d) for n, t, d, _s in _records(member, domain_id) if n == "@"}
    assert ("@", "MX", "10 mx-h2.alpha.test.") not in got
    assert ("@", "MX", "10 mx.elsewhere.net.") in got
    assert ("@", "TXT", '"v=spf1 mx ~all"') not in got
    assert {d for n, t, d in got if t == "TXT"} == {
        '"v=spf1 include:elsewhere.net -all"', '"unrelated=1"',
    }  # fmt: skip


def test_another_accounts_zone_is_not_there(world: World, zone: dict[str, Any]) -> None:
    beta = world.account("beta")
    world.domain(beta, "beta.test")
    other = world.member(beta)
    domain_id = zone["domain"]["id"]
    made = zone["member"].ok(
        "POST", f"/domains/{domain_id}/records", 201,
        json={"type": "A", "name": "x", "address": "192.0.2.1"},
    )  # fmt: skip
    body = {"type": "A", "name": "y", "address": "192.0.2.2"}
    for r in (
        other.get(f"/domains/{domain_id}/records"),
        other.get(f"/domains/{domain_id}/dns"),
        other.patch(f"/domains/{domain_id}/dns", json={"dnssec": True}),
        other.post(f"/domains/{domain_id}/records", json=body),
        other.get(f"/dns-records/{made['id']}"),
        other.request("PUT", f"/dns-records/{made['id']}", json=body),
        other.delete(f"/dns-records/{made['id']}"),
    ):
        assert r.status_code == 404, r.text
    assert zone["member"].ok("GET", f"/dns-records/{made['id']}")["name"] == "x"


def _generations(world: World) -> dict[str, int]:
    with world.db.session() as session:
        return {h.name: h.desired_generation for h in session.scalars(select(Host))}


def test_dns_servers_follow_what_changes_a_zone_only(world: World, zone: dict[str, Any]) -> None:
    member, domain_id = zone["member"], zone["domain"]["id"]
    before = _generations(world)
    made = member.ok(
        "POST", f"/domains/{domain_id}/records", 201,
        json={"type": "A", "name": "x", "address": "192.0.2.1"},
    )  # fmt: skip
    after = _generations(world)
    # A record: the primary only (the secondary transfers it at the primary's NOTIFY).
    assert {n for n in after if after[n] != before[n]} == {"h4"}
    # A site's own change that no record shows (its PHP version): the DNS servers stay.
    member.ok("PATCH", f"/sites/{zone['site']['id']}", json={"php": "8.2"})
    again = _generations(world)
    assert again["h4"] == after["h4"] and again["h1"] > after["h1"]
    member.ok("DELETE", f"/dns-records/{made['id']}", 204)
    assert _generations(world)["h4"] == again["h4"] + 1
    # A new zone: every DNS server (the secondaries must list it).
    before = _generations(world)
    world.domain(world.account("beta"), "beta.test")
    after = _generations(world)
    assert after["h3"] == before["h3"] + 1 and after["h4"] == before["h4"] + 1


def test_a_zone_managed_elsewhere_shows_the_records_to_set_there(zone: dict[str, Any]) -> None:
    member, domain_id = zone["member"], zone["domain"]["id"]
    got = member.ok("PATCH", f"/domains/{domain_id}/dns", json={"hosted": False})
    assert (got["hosted"], got["status"]) == (False, "external")
    records = _records(member, domain_id)
    assert ("www", "A", zone["web"]["address"], f"site {zone['site']['id']}") in records
    assert not [r for r in records if r[1] == "NS"]
    assert _field(member.patch(f"/domains/{domain_id}/dns", json={"dnssec": "maybe"})) == "dnssec"
    got = member.ok("PATCH", f"/domains/{domain_id}/dns", json={"hosted": True, "dnssec": True})
    assert (got["hosted"], got["dnssec"]) == (True, True)


def test_a_wildcard_alias_is_a_name_under_the_accounts_domain(world: World) -> None:
    world.host(["web"])
    account = world.account("alpha")
    world.domain(account, "alpha.test")
    beta = world.account("beta")
    world.domain(beta, "beta.test")
    member = world.member(account)
    body = {"account_id": account["id"], "domain": "alpha.test"}
    for bad, field in (
        (["a*.alpha.test"], "aliases.0"),
        (["*.*.alpha.test"], "aliases.0"),
        (["*alpha.test"], "aliases.0"),
        (["*.beta.test"], "aliases.0"),  # another account's
    ):
        assert _field(member.post("/sites", json={**body, "aliases": bad})) == field, bad
    site = member.ok("POST", "/sites", 201, json={**body, "aliases": ["*.Alpha.test"]})
    assert site["aliases"] == ["*.alpha.test"]
    with world.db.session() as session:
        (view,) = [z for z in zones_for(session) if z.name == "alpha.test"]
        assert {(r.name, r.type) for r in view.records} >= {("*", "A"), ("@", "A")}
