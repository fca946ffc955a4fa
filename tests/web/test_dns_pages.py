"""A domain's DNS zone in the panel: how it is served, every record with where it comes
from, a member's records added, replaced and deleted through the form (the service's
checks, shown at the field or above the form, in English and French), tenancy, viewers,
and the "managed elsewhere" mode.  No DNS host runs here: the page says what the API says."""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.dns.models import DnsRecord
from panel.domains.models import Domain
from tests.web.conftest import Browser, WebWorld

FR = {"Accept-Language": "fr"}
# The form as a browser sends it: every input, the chosen type's filled in.
EMPTY = {"type": "", "name": "", "ttl": "", "address": "", "target": "", "preference": "",
         "exchange": "", "text": "", "priority": "", "weight": "", "port": "", "flags": "0",
         "tag": "issue", "value": ""}  # fmt: skip


def _zone(web: WebWorld, role: str = "owner") -> dict[str, Any]:
    """acme.test: a site www.acme.test on a web host, a mailbox, two DNS servers; alice
    holds ``role`` in the account."""
    world = web.world
    host = world.host(["web"])
    world.host(["mail"])
    world.host(["dns"], settings={"dns_ns_name": "ns1.provider.test", "dns_primary": True})
    world.host(["dns"], settings={"dns_ns_name": "ns2.provider.test"})
    acme = world.account("acme")
    domain = world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test", role)
    staff = world.staff
    site = staff.ok("POST", "/sites", 201, json={"account_id": acme["id"],
                                                 "domain": "www.acme.test"})  # fmt: skip
    staff.ok("POST", "/mailboxes", 201, json={"account_id": acme["id"],
             "address": "info@acme.test", "password": "12345678"})  # fmt: skip
    return {"account": acme, "domain": domain, "site": site, "web": host,
            "page": f"/domains/{domain['id']}/dns",
            "add": f"/domains/{domain['id']}/records"}  # fmt: skip


def _login(web: WebWorld, email: str = "alice@acme.test") -> Browser:
    b = web.browser()
    assert b.login(email).status_code == 303
    return b


def _form(**values: str) -> dict[str, str]:
    return {**EMPTY, **values}


def _records(web: WebWorld, domain_id: int) -> set[tuple[str, str, str, str]]:
    items = web.world.staff.ok("GET", f"/domains/{domain_id}/records")["items"]
    return {(r["name"], r["type"], r["data"], r["source"]) for r in items}


def _members(web: WebWorld) -> list[DnsRecord]:
    with web.db.session() as s:
        return list(s.scalars(select(DnsRecord).order_by(DnsRecord.id)))


def _error(page: str, name: str) -> str:
    m = re.search(rf'<p class="error" id="e-{name}">([^<]*)</p>', page)
    assert m, page
    return html.unescape(m.group(1))


def _alert(page: str) -> str:
    m = re.search(r'<div class="alert" role="alert">\s*<p>([^<]*)</p>', page)
    assert m, page
    return html.unescape(m.group(1))


def _shown(page: str) -> dict[str, str]:
    """The record form's inputs as the page fills them (a select: its chosen option)."""
    form = page[page.index("data-record-form") :]
    form = form[: form.index("</form>")]
    inputs = r'<input id="f-\w+" name="(?P<name>\w+)" type="\w+" value="(?P<value>[^"]*)"'
    values = {m["name"]: html.unescape(m["value"]) for m in re.finditer(inputs, form)}
    for m in re.finditer(r'<select id="f-\w+" name="(?P<name>\w+)".*?</select>', form, re.S):
        chosen = re.search(r'<option value="([^"]*)" selected>', m.group(0))
        values[m["name"]] = chosen.group(1) if chosen else ""
    return values


def test_the_zone_page_says_how_it_is_served_and_where_each_record_comes_from(
    web: WebWorld,
) -> None:
    z = _zone(web)
    b = _login(web)
    domains = b.get(f"/accounts/{z['account']['id']}/domains").text
    assert f'<a href="{z["page"]}">DNS zone<span class="visually-hidden"> acme.test' in domains
    r = b.get(z["page"])
    assert r.status_code == 200 and "<h1>DNS zone of acme.test</h1>" in r.text
    assert "Give these name servers to your registrar:" in r.text
    assert re.search(r"<li><code>ns1.provider.test</code></li><li><code>ns2.provider.test",
                     r.text)  # fmt: skip
    assert 'id="zone-status">pending</span>' in r.text  # no DNS host has applied anything
    assert 'id="dnssec">off</dd>' in r.text
    site = z["site"]
    assert f'<a href="/sites/{site["id"]}">site www.acme.test</a>' in r.text
    for source in ("name servers", "SPF (mail)", "DMARC (mail)", "the mail host&#39;s address"):
        assert f"<td>{source}</td>" in r.text, source
    assert f"<td><code>{z['web']['address']}</code></td>" in r.text
    assert "/dns-records/" not in r.text  # Konbit's records: read-only, nothing to edit
    assert r.text.count('<span class="muted">read-only</span>') == len(
        _records(web, z["domain"]["id"])
    )
    assert f'action="{z["add"]}"' in r.text
    assert '<script src="/static/dns.js" defer></script>' in r.text
    assert b.get("/static/dns.js").status_code == 200

    # A zone the DNS servers' checker refused (the domain failed) says so, with the reason.
    with web.db.session() as s:
        row = s.get_one(Domain, z["domain"]["id"])
        row.status, row.status_reason = "failed", "kzonecheck: bad record at line 12"
        s.commit()
    r = b.get(z["page"])
    assert "The DNS servers refused the latest version of this zone" in _alert(r.text)
    assert '<p class="reason">kzonecheck: bad record at line 12</p>' in r.text

    fr = b.get(z["page"], headers=FR).text
    assert "<h1>Zone DNS de acme.test</h1>" in fr
    assert "Les serveurs DNS ont refusé la dernière version de cette zone" in fr
    assert "Donnez ces serveurs de noms à votre bureau d’enregistrement" in fr
    assert 'id="zone-status">en attente</span>' in fr
    assert f'<a href="/sites/{site["id"]}">site www.acme.test</a>' in fr


@pytest.mark.parametrize(
    ("values", "data"),
    [
        ({"type": "A", "name": "blog", "address": "192.0.2.7"}, "192.0.2.7"),
        ({"type": "AAAA", "name": "v6", "address": "2001:db8::1"}, "2001:db8::1"),
        ({"type": "CNAME", "name": "docs", "target": "Pages.Example.ORG"}, "pages.example.org."),
        ({"type": "MX", "name": "lists", "preference": "5", "exchange": "mx.example.net"},
         "5 mx.example.net."),
        ({"type": "TXT", "name": "", "text": "google-site-verification=abc"},
         '"google-site-verification=abc"'),
        ({"type": "TXT", "name": "long", "text": "x" * 300}, f'"{"x" * 255}" "{"x" * 45}"'),
        ({"type": "SRV", "name": "_sip._tcp", "priority": "1", "weight": "2", "port": "5060",
          "target": "sip.example.net"}, "1 2 5060 sip.example.net."),
        ({"type": "CAA", "name": "@", "flags": "128", "tag": "issuewild",
          "value": "letsencrypt.org"}, '128 issuewild "letsencrypt.org"'),
    ],
    ids=["A", "AAAA", "CNAME", "MX", "TXT", "TXT-long", "SRV", "CAA"],
)  # fmt: skip
def test_a_member_adds_edits_and_deletes_a_record_of_each_type(
    web: WebWorld, values: dict[str, str], data: str
) -> None:
    z = _zone(web)
    b = _login(web)
    b.get(z["page"])
    # The other types' inputs are sent too (as a browser does) and ignored.
    noise = {"address": "198.51.100.1", "target": "ignored.example", "text": "ignored"}
    r = b.post(z["add"], _form(**{**noise, **values, "ttl": "600"}))
    assert r.status_code == 303, _alert(r.text) if "alert" in r.text else r.text
    name = values["name"] or "@"
    assert r.headers["location"] == z["page"]
    page = b.get(z["page"]).text
    assert f"Record {name} {values['type']} added." in page
    assert (name, values["type"], data, "member") in _records(web, z["domain"]["id"])
    (row,) = _members(web)
    assert (row.ttl, row.data) == (600, data)
    assert f'<tr id="record-{row.id}">' in page and "<td>added by the account</td>" in page

    # Its page fills the form with the record; sent back as it is, nothing changes.
    edit = b.get(f"/dns-records/{row.id}").text
    shown = _shown(edit)
    assert shown["type"] == values["type"] and shown["ttl"] == "600"
    assert {k: shown[k] for k in values if k != "name"} == {
        k: v.lower() if k == "target" else v for k, v in values.items() if k != "name"
    }
    r = b.post(f"/dns-records/{row.id}", shown)
    assert r.status_code == 303, r.text
    assert [(m.name, m.type, m.ttl, m.data) for m in _members(web)] == [
        (name, values["type"], 600, data)]  # fmt: skip

    # Edit = replace, by a record of another type.
    r = b.post(f"/dns-records/{row.id}", _form(type="TXT", name="note", text="hello there"))
    assert r.status_code == 303 and r.headers["location"] == z["page"]
    assert "Record note TXT saved." in b.get(z["page"]).text
    (row,) = _members(web)
    assert (row.name, row.type, row.ttl, row.data) == ("note", "TXT", 3600, '"hello there"')

    # Delete asks first, then goes.
    confirm = b.get(f"/dns-records/{row.id}/delete").text
    assert "Delete the record note.acme.test TXT?" in confirm
    assert f'action="/dns-records/{row.id}/delete"' in confirm
    assert "Yes, delete this record" in confirm
    assert _members(web) != []
    r = b.post(f"/dns-records/{row.id}/delete")
    assert r.status_code == 303 and r.headers["location"] == z["page"]
    assert "Record note TXT deleted." in b.get(z["page"]).text
    assert _members(web) == []
    with web.db.session() as s:
        actions = [e.action for e in s.scalars(select(AuditEvent).where(
            AuditEvent.object_type == "dns_records").order_by(AuditEvent.id))]  # fmt: skip
    assert actions == ["create", "update", "update", "delete"]


@pytest.mark.parametrize(
    ("values", "field", "english", "french"),
    [
        ({"type": "A", "name": "bad name", "address": "192.0.2.7"}, "name",
         "must be '@' (the domain itself) or a name under it",
         "doit être « @ » (le domaine lui-même) ou un nom sous lui"),
        ({"type": "A", "name": "ok", "address": "999.1.1.1"}, "address",
         "must be an IPv4 address, like 192.0.2.10", "doit être une adresse IPv4"),
        ({"type": "AAAA", "name": "ok", "address": "192.0.2.7"}, "address",
         "must be an IPv6 address", "doit être une adresse IPv6"),
        ({"type": "A", "name": "ok", "address": "192.0.2.7", "ttl": "5"}, "ttl",
         "must be 60 or more", "doit valoir au moins 60"),
        ({"type": "TXT", "name": "ok", "text": 'a" NS evil.test. "'}, "text",
         "must be 1-2048 printable ASCII characters, without double quotes or backslashes",
         "doit compter de 1 à 2048 caractères ASCII imprimables, sans guillemet droit"),
        ({"type": "CNAME", "name": "ok", "target": "not a host"}, "target",
         "must not contain spaces", "ne doit pas contenir d’espace"),
        ({"type": "MX", "name": "ok", "exchange": "mx.example.net", "preference": "70000"},
         "preference", "must be 65535 or less", "doit valoir 65535 au plus"),
        ({"type": "MX", "name": "ok", "exchange": ""}, "exchange",
         "Field required", "Champ obligatoire"),
        ({"type": "CAA", "name": "@", "tag": "evil", "value": "ca"}, "tag",
         "must be one of: 'issue', 'issuewild', 'iodef'", "doit être l’un de : 'issue'"),
        ({"type": "CAA", "name": "@", "value": "ca\"x"}, "value",
         "must be 1-200 letters, digits", "doit compter de 1 à 200 lettres"),
        ({"type": "NS", "name": "sub", "target": "ns.evil.test"}, "type",
         "must be one of: 'A', 'AAAA', 'CNAME'", "doit être l’un de : 'A', 'AAAA'"),
        ({"type": "SRV", "name": "sip", "port": "5060", "target": "sip.example.net"}, "name",
         "an SRV record's name starts with _service._proto, like _sip._tcp",
         "le nom d’un enregistrement SRV commence par _service._proto"),
        ({"type": "CNAME", "name": "@", "target": "example.net"}, "name",
         "a CNAME cannot be at the domain itself; use A/AAAA records",
         "un CNAME ne peut pas être sur le domaine lui-même"),
    ],
    ids=["name", "ipv4", "ipv6", "ttl", "txt-quote", "target", "preference", "required",
         "caa-tag", "caa-value", "type", "srv-name", "cname-apex"],
)  # fmt: skip
def test_a_refused_field_is_said_at_its_input_in_english_and_french(
    web: WebWorld, values: dict[str, str], field: str, english: str, french: str
) -> None:
    z = _zone(web)
    b = _login(web)
    b.get(z["page"])
    r = b.post(z["add"], _form(**values))
    assert r.status_code == 422
    assert _error(r.text, field).startswith(english), _error(r.text, field)
    assert f'id="f-{field}"' in r.text and 'aria-invalid="true"' in r.text
    shown = _shown(r.text)  # the form comes back as it was sent (a select: if offered)
    typed = {k: v for k, v in values.items() if k not in ("type", "tag")}
    assert {k: shown[k] for k in typed} == typed
    assert shown["type"] == (values["type"] if values["type"] != "NS" else "")
    r = b.post(z["add"], _form(**values), headers=FR)
    assert r.status_code == 422 and r.headers["content-language"] == "fr"
    assert _error(r.text, field).startswith(french), _error(r.text, field)
    assert _members(web) == []


def test_a_record_that_clashes_with_the_zone_is_refused_above_the_form(web: WebWorld) -> None:
    z = _zone(web)
    b = _login(web)
    b.get(z["page"])
    r = b.post(z["add"], _form(type="A", name="www", address="192.0.2.9"))
    assert r.status_code == 409
    assert _alert(r.text) == (
        f"www.acme.test is a site on this provider (site {z['site']['id']}): its address "
        "records are Konbit's. Remove the site or its alias first, or use another name."
    )
    assert _shown(r.text)["address"] == "192.0.2.9"
    r = b.post(z["add"], _form(type="A", name="www", address="192.0.2.9"), headers=FR)
    assert r.status_code == 409
    assert _alert(r.text).startswith("www.acme.test est un site chez cet hébergeur")
    r = b.post(z["add"], _form(type="CNAME", name="_dmarc", target="x.example.net"))
    assert r.status_code == 409
    assert _alert(r.text) == "_dmarc.acme.test already has TXT records; a CNAME must be alone"
    assert _members(web) == []

    # A replacement is checked against the rest of the zone, not against itself.
    assert b.post(z["add"], _form(type="CNAME", name="docs", target="x.net")).status_code == 303
    assert b.post(z["add"], _form(type="A", name="blog", address="192.0.2.1")).status_code == 303
    _docs, blog = _members(web)
    b.get(f"/dns-records/{blog.id}")
    r = b.post(f"/dns-records/{blog.id}", _form(type="TXT", name="docs", text="hi"))
    assert r.status_code == 409
    assert _alert(r.text) == "docs.acme.test is a CNAME to x.net.; remove it first"
    assert _shown(r.text)["text"] == "hi" and f'action="/dns-records/{blog.id}"' in r.text
    r = b.post(f"/dns-records/{blog.id}", _form(type="A", name="blog", address="192.0.2.x"),
               headers=FR)  # fmt: skip
    assert r.status_code == 422 and _error(r.text, "address").startswith("doit être une adresse")
    assert [(m.name, m.type, m.data) for m in _members(web)] == [
        ("docs", "CNAME", "x.net."), ("blog", "A", "192.0.2.1")]  # fmt: skip


def test_another_accounts_zone_and_records_answer_404(web: WebWorld) -> None:
    z = _zone(web)
    api = web.world.member(z["account"])
    made = api.ok("POST", f"/domains/{z['domain']['id']}/records", 201,
                  json={"type": "A", "name": "x", "address": "192.0.2.1"})  # fmt: skip
    beta = web.world.account("beta")
    web.world.domain(beta, "beta.test")
    web.member(beta, "bob@beta.test")
    b = _login(web, "bob@beta.test")
    b.get("/profile")
    rid = made["id"]
    form = _form(type="A", name="y", address="192.0.2.2")
    for r in (
        b.get(z["page"]),
        b.post(z["page"], {"external": "on"}),
        b.post(z["add"], form),
        b.get(f"/dns-records/{rid}"),
        b.post(f"/dns-records/{rid}", form),
        b.get(f"/dns-records/{rid}/delete"),
        b.post(f"/dns-records/{rid}/delete"),
    ):
        assert r.status_code == 404, (r.request.url, r.status_code)
        assert "acme.test" not in r.text and "192.0.2.1" not in r.text
    assert [(m.name, m.data) for m in _members(web)] == [("x", "192.0.2.1")]
    assert web.world.staff.ok("GET", f"/domains/{z['domain']['id']}/dns")["hosted"] is True

    # Every form needs its session's token, even the member's own.
    alice = _login(web)
    for path, body in ((z["add"], form), (z["page"], {"external": "on"}),
                       (f"/dns-records/{rid}", form), (f"/dns-records/{rid}/delete", {})):
        r = alice.post(path, body, csrf=False)
        assert r.status_code == 403 and "Form refused" in r.text, path
    assert [(m.name, m.data) for m in _members(web)] == [("x", "192.0.2.1")]


def test_a_viewer_reads_the_zone_and_changes_nothing(web: WebWorld) -> None:
    z = _zone(web, role="viewer")
    api = web.world.member(z["account"])
    made = api.ok("POST", f"/domains/{z['domain']['id']}/records", 201,
                  json={"type": "TXT", "name": "note", "text": "hello"})  # fmt: skip
    b = _login(web)
    page = b.get(z["page"]).text
    assert "<td><code>&#34;hello&#34;</code></td>" in page
    assert "<form method=\"post\" action=\"/domains/" not in page
    assert "data-record-form" not in page and f"/dns-records/{made['id']}/delete" not in page
    assert f'<a href="/dns-records/{made["id"]}">View' in page
    record = b.get(f"/dns-records/{made['id']}").text
    assert "data-record-form" not in record and "needs the manager or owner role" in record
    assert 'action="/dns-records/' not in b.get(f"/dns-records/{made['id']}/delete").text
    rid = made["id"]
    for path, body in ((z["add"], _form(type="A", name="y", address="192.0.2.2")),
                       (z["page"], {"external": "on", "dnssec": "on"}),
                       (f"/dns-records/{rid}", _form(type="TXT", name="note", text="changed")),
                       (f"/dns-records/{rid}/delete", {})):  # fmt: skip
        r = b.post(path, body)
        assert r.status_code == 403, (path, r.status_code)
    assert [(m.name, m.data) for m in _members(web)] == [("note", '"hello"')]
    zone = web.world.staff.ok("GET", f"/domains/{z['domain']['id']}/dns")
    assert (zone["hosted"], zone["dnssec"]) == (True, False)


def test_a_zone_managed_elsewhere_lists_the_records_to_set_there(web: WebWorld) -> None:
    z = _zone(web)
    b = _login(web)
    b.get(z["page"])
    r = b.post(z["page"], {"external": "on"})
    assert r.status_code == 303 and r.headers["location"] == z["page"]
    page = b.get(z["page"]).text
    assert "DNS settings of acme.test saved: set its records at your DNS provider." in page
    assert ("The DNS of acme.test is managed elsewhere: set these records at your DNS "
            "provider.") in page  # fmt: skip
    assert "<h2 id=\"h-records\">Records to set at your DNS provider</h2>" in page
    assert 'id="zone-status">managed elsewhere</span>' in page
    assert "ns1.provider.test" not in page and "<td>name servers</td>" not in page
    assert f"<td><code>{z['web']['address']}</code></td>" in page  # the site's A, to set there
    assert '<input id="f-external" name="external" type="checkbox" checked' in page
    zone = web.world.staff.ok("GET", f"/domains/{z['domain']['id']}/dns")
    assert (zone["hosted"], zone["status"]) == (False, "external")
    fr = b.get(z["page"], headers=FR).text
    assert ("Le DNS de acme.test est géré ailleurs : créez ces enregistrements chez votre "
            "hébergeur DNS.") in fr  # fmt: skip
    assert 'id="zone-status">géré ailleurs</span>' in fr

    # Back on Konbit's servers, signed.
    r = b.post(z["page"], {"dnssec": "on"})
    page = b.get(z["page"]).text
    assert "DNS settings of acme.test saved: its DNS servers serve the zone." in page
    assert 'id="dnssec">on: the DNS servers sign the zone</dd>' in page
    assert "<td>name servers</td>" in page
    zone = web.world.staff.ok("GET", f"/domains/{z['domain']['id']}/dns")
    assert (zone["hosted"], zone["dnssec"]) == (True, True)
    with web.db.session() as s:
        changes = [e.changes for e in s.scalars(select(AuditEvent).where(
            AuditEvent.object_type == "dns_zone").order_by(AuditEvent.id))]  # fmt: skip
    assert changes == [{"hosted": {"old": True, "new": False}},
                       {"hosted": {"old": False, "new": True},
                        "dnssec": {"old": False, "new": True}}]  # fmt: skip
