"""The pages added over the same services as the API: an account's domains, a mailing
list's roster and settings, the staff host form and paginated staff lists, the daily
purge of expired browser sessions, and form errors in the page's language."""

from __future__ import annotations

import datetime as dt
import html
import re
from typing import Any

from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.core.db import utcnow
from panel.web import sessions
from panel.web.models import WebSession
from tests.web.conftest import WebWorld


def _acme(web: WebWorld, role: str = "owner") -> dict[str, Any]:
    web.world.host(["web"])
    web.world.host(["mail"])
    web.world.host(["lists"])
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test", role)
    return acme


def _other(web: WebWorld) -> tuple[dict[str, Any], dict[str, Any], dict[str, Any]]:
    """Another account with a domain and a list alice must never see."""
    other = web.world.account("other")
    domain = web.world.domain(other, "other.test")
    mlist = web.world.staff.ok("POST", "/lists", 201, json={
        "account_id": other["id"], "address": "secret@other.test",
        "owners": ["boss@other.test"]})
    web.world.staff.ok("POST", f"/lists/{mlist['id']}/members", 201,
                       json={"email": "hidden@example.org"})
    return other, domain, mlist


def _text(r: Any) -> str:
    return html.unescape(r.text)


# -- domains -------------------------------------------------------------------------------


def test_a_member_lists_adds_and_deletes_domains(web: WebWorld) -> None:
    acme = _acme(web)
    staff = web.world.staff
    staff.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": "www.acme.test"})
    b = web.browser()
    b.login("alice@acme.test")
    assert f'href="/accounts/{acme["id"]}/domains"' in b.get(f"/accounts/{acme['id']}").text
    r = b.get(f"/accounts/{acme['id']}/domains")
    assert r.status_code == 200 and "acme.test" in r.text and "sites" in r.text
    # The API's checks, next to the field.
    r = b.post(f"/accounts/{acme['id']}/domains", {"name": "not a domain"})
    assert r.status_code == 422 and 'id="e-name">must not contain spaces' in r.text
    r = b.post(f"/accounts/{acme['id']}/domains", {"name": "acme.test"})
    assert r.status_code == 422
    assert "The domain 'acme.test' is already registered in the panel." in _text(r)
    r = b.post(f"/accounts/{acme['id']}/domains", {"name": "Coop.Example"})
    assert r.status_code == 303
    r = b.get(r.headers["location"])
    assert "Domain coop.example added." in r.text
    names = {d["name"]: d for d in staff.ok("GET", "/domains")["items"]}
    assert set(names) == {"acme.test", "coop.example"}
    # A used domain is not deleted; an unused one is, after a confirmation.
    used = names["acme.test"]
    r = b.get(f"/domains/{used['id']}/delete")
    assert "still used by sites" in r.text and 'action="/domains/' not in r.text
    r = b.post(f"/domains/{used['id']}/delete")
    assert r.status_code == 409 and "still used by sites" in r.text
    free = names["coop.example"]
    r = b.get(f"/domains/{free['id']}/delete")
    assert "Nothing is archived" in r.text
    r = b.post(f"/domains/{free['id']}/delete")
    assert r.status_code == 303
    assert [d["name"] for d in staff.ok("GET", "/domains")["items"]] == ["acme.test"]
    events = staff.ok("GET", "/audit-events", params={"object_type": "domains"})["items"]
    assert [(e["action"], e["actor_email"]) for e in events[-2:]] == [
        ("create", "alice@acme.test"), ("delete", "alice@acme.test")]


def test_domains_of_another_account_are_404_and_forms_need_csrf(web: WebWorld) -> None:
    acme = _acme(web)
    other, domain, _mlist = _other(web)
    b = web.browser()
    b.login("alice@acme.test")
    for path in (f"/accounts/{other['id']}/domains", f"/domains/{domain['id']}/delete"):
        r = b.get(path)
        assert r.status_code == 404, path
        assert "other.test" not in r.text
    assert b.post(f"/accounts/{other['id']}/domains", {"name": "x.other.test"}).status_code == 404
    assert b.post(f"/domains/{domain['id']}/delete").status_code == 404
    names = [d["name"] for d in web.world.staff.ok("GET", "/domains")["items"]]
    assert "other.test" in names and "x.other.test" not in names
    # CSRF: without the token, or with another, the form is refused and nothing changes.
    b.get(f"/accounts/{acme['id']}/domains")
    r = b.post(f"/accounts/{acme['id']}/domains", {"name": "new.test"}, csrf=False)
    assert r.status_code == 403
    acme_domain = next(d for d in web.world.staff.ok("GET", "/domains")["items"]
                       if d["name"] == "acme.test")
    r = b.post(f"/domains/{acme_domain['id']}/delete", {"csrf": "forged"}, csrf=False)
    assert r.status_code == 403
    assert {d["name"] for d in web.world.staff.ok("GET", "/domains")["items"]} == {
        "acme.test", "other.test"}


def test_a_viewer_sees_domains_but_cannot_change_them(web: WebWorld) -> None:
    acme = _acme(web, role="viewer")
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/accounts/{acme['id']}/domains")
    assert r.status_code == 200 and "acme.test" in r.text and "Add domain" not in r.text
    assert b.post(f"/accounts/{acme['id']}/domains", {"name": "more.test"}).status_code == 403


# -- mailing lists: roster and settings ----------------------------------------------------


def _list(web: WebWorld, acme: dict[str, Any]) -> dict[str, Any]:
    return web.world.staff.ok("POST", "/lists", 201, json={  # type: ignore[no-any-return]
        "account_id": acme["id"], "address": "news@acme.test", "owners": ["alice@acme.test"]})


def test_the_roster_page_adds_imports_and_removes(web: WebWorld) -> None:
    acme = _acme(web)
    mlist = _list(web, acme)
    staff = web.world.staff
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/lists/{mlist['id']}")
    assert f'href="/lists/{mlist["id"]}/members"' in r.text
    r = b.get(f"/lists/{mlist['id']}/members")
    assert r.status_code == 200 and "Nobody on the roster yet." in r.text
    r = b.post(f"/lists/{mlist['id']}/members", {"email": "Ann@Example.org", "role": "member"})
    assert r.status_code == 303
    assert "ann@example.org added to the list." in b.get(r.headers["location"]).text
    r = b.post(f"/lists/{mlist['id']}/members", {"email": "ann@example.org", "role": "member"})
    assert r.status_code == 422 and "ann@example.org is already on this list as member." in r.text
    r = b.post(f"/lists/{mlist['id']}/members", {"email": "not-an-address"})
    assert r.status_code == 422
    assert 'id="e-email">must be one address of the form name@domain' in r.text
    # Bulk import: each wrong address named with its reason; nothing added then.
    pasted = "bob@example.org, carl@example.org\nDora Doe <dora@example.org>\nbad@@example.org"
    r = b.post(f"/lists/{mlist['id']}/members/import", {"emails": pasted})
    assert r.status_code == 422
    assert "bad@@example.org: must be one address of the form name@domain" in _text(r)
    assert "Dora Doe &lt;dora@example.org&gt;" in r.text  # the textarea keeps what was pasted
    pasted = "bob@example.org, carl@example.org\nDora Doe <dora@example.org>\nann@example.org"
    r = b.post(f"/lists/{mlist['id']}/members/import", {"emails": pasted})
    assert r.status_code == 303
    assert "Imported: 3 added, 1 already on the list." in b.get(r.headers["location"]).text
    r = b.post(f"/lists/{mlist['id']}/members/import", {"emails": "  "})
    assert r.status_code == 422 and 'id="e-emails">must have at least one entry' in r.text
    members = staff.ok("GET", f"/lists/{mlist['id']}/members")["items"]
    assert [m["email"] for m in members] == [
        "ann@example.org", "bob@example.org", "carl@example.org", "dora@example.org"]
    # Search, then remove one.
    r = b.get(f"/lists/{mlist['id']}/members?q=carl")
    assert "carl@example.org" in r.text and "bob@example.org" not in r.text
    carl = next(m for m in members if m["email"] == "carl@example.org")
    r = b.post(f"/lists/{mlist['id']}/members/{carl['id']}/remove")
    assert r.status_code == 303
    emails = [m["email"] for m in staff.ok("GET", f"/lists/{mlist['id']}/members")["items"]]
    assert "carl@example.org" not in emails and len(emails) == 3
    assert staff.ok("GET", f"/lists/{mlist['id']}")["status"] == "pending"
    events = staff.ok("GET", "/audit-events", params={"object_type": "mailing_lists"})["items"]
    assert [e["changes"]["members"] for e in events if "members" in e["changes"]] == [
        {"added": ["ann@example.org"]}, {"imported": 3}, {"removed": ["carl@example.org"]}]


def test_the_roster_is_paginated(web: WebWorld) -> None:
    acme = _acme(web)
    mlist = _list(web, acme)
    web.world.staff.ok("POST", f"/lists/{mlist['id']}/members/import", 200, json={
        "emails": [f"m{i}@example.org" for i in range(5)]})
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/lists/{mlist['id']}/members?limit=2")
    assert "m1@example.org" in r.text and "m2@example.org" not in r.text
    link = re.search(r'<a href="([^"]+)" rel="next">', r.text)
    assert link
    r = b.get(html.unescape(link[1]))
    assert "m2@example.org" in r.text and "m1@example.org" not in r.text
    assert "First page" in r.text


def test_list_settings_form(web: WebWorld) -> None:
    acme = _acme(web)
    mlist = _list(web, acme)
    staff = web.world.staff
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/lists/{mlist['id']}/settings")
    assert r.status_code == 200 and 'name="max_message_size"' in r.text
    r = b.post(f"/lists/{mlist['id']}/settings", {"max_message_size": "big",
                                                   "subject_prefix": '"quoted"'})
    assert r.status_code == 422
    assert 'id="e-max_message_size">must be a whole number' in r.text
    assert 'id="e-subject_prefix">must not contain &lt;, &gt;, &#34; or \\' in r.text
    r = b.post(f"/lists/{mlist['id']}/settings", {"max_message_size": "99999"})
    assert r.status_code == 422 and 'id="e-max_message_size">must be 20480 or less' in r.text
    assert staff.ok("GET", f"/lists/{mlist['id']}")["settings"] == {}
    r = b.post(f"/lists/{mlist['id']}/settings", {
        "display_name": "Acme news", "subject_prefix": "[news] ", "archive_policy": "private",
        "max_message_size": "512", "reply_to": "", "advertised": "no",
        "send_welcome_message": ""})
    assert r.status_code == 303
    assert "Settings of news@acme.test saved." in b.get(r.headers["location"]).text
    got = staff.ok("GET", f"/lists/{mlist['id']}")
    assert got["settings"] == {"display_name": "Acme news", "subject_prefix": "[news] ",
                               "archive_policy": "private", "max_message_size": 512,
                               "advertised": False}
    assert got["status"] == "pending"
    # The form shows what is set; sending it back unchanged changes nothing.
    r = b.get(f"/lists/{mlist['id']}/settings")
    assert 'value="Acme news"' in r.text and '<option value="private" selected>' in r.text
    form = {"display_name": "Acme news", "subject_prefix": "[news] ", "archive_policy": "private",
            "max_message_size": "512", "advertised": "no", "description": "For members",
            "reply_to": "", "send_welcome_message": ""}
    assert b.post(f"/lists/{mlist['id']}/settings", form).status_code == 303
    assert staff.ok("GET", f"/lists/{mlist['id']}")["settings"]["description"] == "For members"
    events = staff.ok("GET", "/audit-events", params={"object_type": "mailing_lists",
                                                       "action": "update"})["items"]
    change = events[-1]["changes"]["settings"]
    assert change["new"] == {**change["old"], "description": "For members"}


def test_list_pages_of_another_account_are_404_and_need_csrf(web: WebWorld) -> None:
    acme = _acme(web)
    mine = _list(web, acme)
    _other_account, _domain, theirs = _other(web)
    staff = web.world.staff
    member = staff.ok("GET", f"/lists/{theirs['id']}/members")["items"][0]
    b = web.browser()
    b.login("alice@acme.test")
    for path in (f"/lists/{theirs['id']}/members", f"/lists/{theirs['id']}/settings"):
        r = b.get(path)
        assert r.status_code == 404, path
        assert "secret@other.test" not in r.text and "hidden@example.org" not in r.text
    b.get(f"/lists/{mine['id']}/members")
    for path, data in (
        (f"/lists/{theirs['id']}/members", {"email": "spy@example.org"}),
        (f"/lists/{theirs['id']}/members/import", {"emails": "spy@example.org"}),
        (f"/lists/{theirs['id']}/members/{member['id']}/remove", {}),
        (f"/lists/{theirs['id']}/settings", {"display_name": "pwned"}),
        # Another list's member id through my own list: 404 too.
        (f"/lists/{mine['id']}/members/{member['id']}/remove", {}),
    ):
        assert b.post(path, data).status_code == 404, path
    assert [m["email"] for m in staff.ok("GET", f"/lists/{theirs['id']}/members")["items"]] == [
        "hidden@example.org"]
    assert staff.ok("GET", f"/lists/{theirs['id']}")["settings"] == {}
    for path, data in (
        (f"/lists/{mine['id']}/members", {"email": "x@example.org"}),
        (f"/lists/{mine['id']}/members/import", {"emails": "x@example.org"}),
        (f"/lists/{mine['id']}/settings", {"display_name": "x"}),
    ):
        assert b.post(path, data, csrf=False).status_code == 403, path
    assert staff.ok("GET", f"/lists/{mine['id']}/members")["items"] == []


def test_a_viewer_reads_the_roster_but_cannot_change_it(web: WebWorld) -> None:
    acme = _acme(web, role="viewer")
    mlist = _list(web, acme)
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/lists/{mlist['id']}/members")
    assert r.status_code == 200 and "Import addresses" not in r.text
    assert "<fieldset disabled>" in b.get(f"/lists/{mlist['id']}/settings").text
    assert b.post(f"/lists/{mlist['id']}/members", {"email": "a@example.org"}).status_code == 403


# -- staff: host form and pagination -------------------------------------------------------


def test_staff_edit_a_host(web: WebWorld) -> None:
    web.user("ops@provider.test", staff=True)
    h = web.world.host(["web"])
    web.world.host(["lists"])
    staff = web.world.staff
    b = web.browser()
    b.login("ops@provider.test")
    assert f'href="/staff/hosts/{h["id"]}/edit"' in b.get(f"/staff/hosts/{h['id']}").text
    r = b.get(f"/staff/hosts/{h['id']}/edit")
    assert r.status_code == 200 and 'value="8.2"' in r.text
    base = {"address": h["address"], "ssh_port": "22", "ssh_user": "root",
            "host_key": h["host_key"], "web_server": "nginx", "enabled": "on"}
    r = b.post(f"/staff/hosts/{h['id']}/edit", {**base, "roles": [], "php_versions": "8.x",
                                                "relay_host": "not a host!", "ssh_port": "0"})
    assert r.status_code == 422
    assert 'id="e-roles">must have at least one entry' in r.text
    assert 'id="e-php_versions">must be a PHP version like' in r.text
    assert 'id="e-relay_host">must be an IP address or a DNS name' in r.text
    assert 'id="e-ssh_port">must be 1 or more' in r.text
    assert staff.ok("GET", f"/hosts/{h['id']}")["desired_generation"] == h["desired_generation"]
    r = b.post(f"/staff/hosts/{h['id']}/edit", {
        **base, "roles": ["web", "lists"], "php_versions": "8.1, 8.3",
        "engines": ["postgresql"], "relay_host": "smtp.relay.test", "enabled": ""})
    assert r.status_code == 303
    got = staff.ok("GET", f"/hosts/{h['id']}")
    assert got["roles"] == ["lists", "web"] and got["enabled"] is False
    assert got["settings"] == {"web_server": "nginx", "php_versions": ["8.1", "8.3"],
                               "engines": ["postgresql"], "relay_host": "smtp.relay.test",
                               "toy_motd": "hello from konbit",  # the toy plugin's
                               "sftp_port": 2222, "web_quota": "none",
                               # the DNS plugin's (public_*: how zones name any host)
                               "dns_ns_name": "", "dns_primary": False, "public_ipv4": None,
                               "public_ipv6": None, "public_name": ""}
    assert got["desired_generation"] == h["desired_generation"] + 1
    assert b.post(f"/staff/hosts/{h['id']}/edit", {**base, "roles": ["web"]},
                  csrf=False).status_code == 403
    with web.db.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "hosts",
                                                   AuditEvent.action == "update")).one()
        assert event.actor_email == "ops@provider.test" and "settings" in event.changes


def test_a_member_cannot_open_the_host_form(web: WebWorld) -> None:
    _acme(web)
    h = web.world.host(["db"])
    b = web.browser()
    b.login("alice@acme.test")
    assert b.get(f"/staff/hosts/{h['id']}/edit").status_code == 403
    b.get("/profile")
    assert b.post(f"/staff/hosts/{h['id']}/edit", {"roles": ["db"]}).status_code == 403


def _pages(b: Any, url: str) -> list[str]:
    """Every page of a paginated staff list, following its "next page" links."""
    out = []
    while url:
        r = b.get(url)
        assert r.status_code == 200, url
        out.append(r.text)
        link = re.search(r'<a href="([^"]+)" rel="next">', r.text)
        url = html.unescape(link[1]) if link else ""
    return out


def test_staff_lists_are_paginated_with_the_api_cursor(web: WebWorld) -> None:
    web.user("ops@provider.test", staff=True)
    for slug in ("alpha", "bravo", "charlie", "delta", "echo"):
        web.world.account(slug)
    for _ in range(3):
        web.world.host(["web"])
    b = web.browser()
    b.login("ops@provider.test")
    pages = _pages(b, "/staff/accounts?limit=2")
    assert len(pages) == 3
    seen = [re.findall(r'href="/staff/accounts/\d+">([a-z]+)<', p) for p in pages]
    assert seen == [["alpha", "bravo"], ["charlie", "delta"], ["echo"]]
    assert "First page" in pages[1]
    pages = _pages(b, "/staff/hosts?limit=2")
    assert [re.findall(r'href="/staff/hosts/\d+">(h\d+)<', p) for p in pages] == [
        ["h1", "h2"], ["h3"]]
    # The audit log, newest first, keeps its filters from page to page.
    pages = _pages(b, "/staff/audit?limit=2&action=create&object_type=accounts")
    slugs = [re.findall(r'"slug": {"new": "([a-z]+)"}', p) for p in pages]
    assert slugs == [["echo", "delta"], ["charlie", "bravo"], ["alpha"]]
    assert b.get("/staff/audit?cursor=garbage").status_code == 422


def test_host_applies_are_paginated(web: WebWorld) -> None:
    from panel.hosts.models import Apply

    web.user("ops@provider.test", staff=True)
    h = web.world.host(["web"])
    with web.db.session() as s:
        for i in range(3):
            s.add(Apply(host_id=h["id"], generation=i + 1, result="failed", diff="",
                        log=f"log {i}", error=f"error number {i}"))
        s.commit()
    b = web.browser()
    b.login("ops@provider.test")
    pages = _pages(b, f"/staff/hosts/{h['id']}?limit=2")
    assert [re.findall(r"error number (\d)", p) for p in pages] == [["2", "1"], ["0"]]
    pages = _pages(b, "/staff/failed?limit=2")
    assert [re.findall(r"error number (\d)", p) for p in pages] == [["2", "1"], ["0"]]


# -- the daily purge of browser sessions ---------------------------------------------------


def test_expired_web_sessions_are_purged_daily(web: WebWorld) -> None:
    uid = web.user("alice@acme.test")
    now = utcnow()
    with web.db.session() as s:
        from panel.accounts.models import User

        user = s.get_one(User, uid)
        live, _ = sessions.open_session(s, user, verified=True)
        expired, _ = sessions.open_session(s, user, verified=True)
        expired.expires_at = now - dt.timedelta(minutes=1)
        idle, _ = sessions.open_session(s, user, verified=True)
        idle.last_seen_at = now - sessions.SESSION_IDLE - dt.timedelta(minutes=1)
        s.commit()
        live_id = live.id
    tasks = web.app.state.tasks
    purge = tasks.purge_web_sessions
    assert purge.name == "purge_web_sessions"
    due = {t.name for t in tasks.huey.read_periodic(dt.datetime(2030, 1, 1, 3, 23))}
    assert "purge_web_sessions" in due and "purge_audit" not in due
    assert purge.call_local() == 2
    with web.db.session() as s:
        assert s.scalars(select(WebSession.id)).all() == [live_id]
    assert purge.call_local() == 0


# -- pages moved onto the services the API uses --------------------------------------------


def test_membership_pages_keep_the_last_owner(web: WebWorld) -> None:
    acme = _acme(web)
    web.user("bob@acme.test")
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/members")
    mine = web.world.staff.ok("GET", f"/accounts/{acme['id']}/memberships")[0]
    r = b.post(f"/accounts/{acme['id']}/members/{mine['id']}", {"role": "viewer"})
    assert r.status_code == 409 and "last owner" in r.text
    r = b.post(f"/accounts/{acme['id']}/members/{mine['id']}", {"action": "remove"})
    assert r.status_code == 409
    assert b.post(f"/accounts/{acme['id']}/members",
                  {"email": "bob@acme.test", "role": "viewer"}).status_code == 200
    r = b.post(f"/accounts/{acme['id']}/members", {"email": "bob@acme.test", "role": "owner"})
    assert r.status_code == 422 and "already a member" in r.text
    bob = web.world.staff.ok("GET", f"/accounts/{acme['id']}/memberships")[1]
    assert b.post(f"/accounts/{acme['id']}/members/{bob['id']}",
                  {"role": "owner"}).status_code == 303
    assert b.post(f"/accounts/{acme['id']}/members/{mine['id']}",
                  {"action": "remove"}).status_code == 303
    assert [m["email"] for m in web.world.staff.ok(
        "GET", f"/accounts/{acme['id']}/memberships")] == ["bob@acme.test"]


def test_staff_add_a_host_through_the_hosts_service(web: WebWorld) -> None:
    from tests.conftest import host_key

    web.user("ops@provider.test", staff=True)
    b = web.browser()
    b.login("ops@provider.test")
    b.get("/staff/hosts")
    form = {"name": "web9", "address": "10.0.0.9", "host_key": host_key(), "roles": "web",
            "php_versions": "8.2, 8.3"}
    r = b.post("/staff/hosts", form)
    assert r.status_code == 303
    host = web.world.staff.ok("GET", "/hosts")["items"][0]
    assert host["name"] == "web9" and host["settings"]["php_versions"] == ["8.2", "8.3"]
    r = b.post("/staff/hosts", form)
    assert r.status_code == 422 and "A host named web9 already exists." in r.text
