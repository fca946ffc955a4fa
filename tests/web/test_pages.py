"""The member and staff pages over HTTP: sessions, CSRF, tenancy, errors next to fields,
languages; every write checked through the API that shares its services."""

from __future__ import annotations

import re

import pyotp
from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.web.models import WebPrefs
from tests.web.conftest import PASSWORD, WebWorld


def _acme(web: WebWorld, role: str = "owner") -> dict[str, object]:
    web.world.host(["web"])
    web.world.host(["mail"])
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test", role)
    return acme


def test_login_logout_and_cookie_flags(web: WebWorld) -> None:
    acme = _acme(web)
    b = web.browser()
    assert b.get(f"/accounts/{acme['id']}").headers["location"].startswith("/login?next=")
    r = b.login("alice@acme.test", "wrong password")
    assert r.status_code == 401 and "Wrong email or password." in r.text
    r = b.login("alice@acme.test")
    assert r.status_code == 303
    cookie = r.headers["set-cookie"]
    assert "konbit_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    assert b.get("/").headers["location"] == f"/accounts/{acme['id']}"
    r = b.post("/logout")
    assert r.status_code == 303
    assert b.get(f"/accounts/{acme['id']}").status_code == 303  # back to the login form


def test_password_change_uses_the_api_rules(web: WebWorld) -> None:
    _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    other = web.browser()
    other.login("alice@acme.test")
    r = b.post("/profile/password", {"current_password": "nope", "password": "new password 1",
                                     "password2": "new password 1"})
    assert r.status_code == 422
    assert re.search(r'id="e-current_password">does not match your current password', r.text)
    r = b.post("/profile/password", {"current_password": PASSWORD, "password": "short",
                                     "password2": "short"})
    assert r.status_code == 422 and 'id="e-password">must be at least 8 characters' in r.text
    r = b.post("/profile/password", {"current_password": PASSWORD, "password": "new password 1",
                                     "password2": "new password 1"})
    assert r.status_code == 200 and "Your password is changed" in r.text
    assert other.get("/profile").status_code == 303  # the other browser is logged out
    assert web.browser().login("alice@acme.test", "new password 1").status_code == 303


def test_repeated_failed_logins_are_slowed_down(web: WebWorld) -> None:
    _acme(web)
    b = web.browser()
    for _ in range(5):
        assert b.login("alice@acme.test", "bad guess").status_code == 401
    r = b.login("alice@acme.test")  # even the right password waits now
    assert r.status_code == 429 and "Too many failed attempts" in r.text


def test_totp_is_asked_after_the_password_once_enabled(web: WebWorld) -> None:
    _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    r = b.post("/profile/totp", {"action": "start"})
    secret = re.search(r"secret=([A-Z2-7]+)", r.text)
    assert secret, r.text
    r = b.post("/profile/totp", {"action": "confirm", "code": "000000"})
    assert r.status_code == 422
    r = b.post("/profile/totp", {"action": "confirm", "code": pyotp.TOTP(secret[1]).now()})
    assert "Two-factor authentication is on." in r.text
    c = web.browser()
    r = c.login("alice@acme.test")
    assert r.headers["location"].startswith("/login/totp")
    assert c.get("/profile").status_code == 303  # not logged in before the code
    c.get("/login/totp")
    assert c.post("/login/totp", {"code": "123456", "next": "/"}).status_code == 401
    r = c.post("/login/totp", {"code": pyotp.TOTP(secret[1]).now(), "next": "/profile"})
    assert r.status_code == 303
    c.get("/profile")
    assert c.get("/profile").status_code == 200


def test_a_member_creates_edits_disables_and_deletes_a_site(web: WebWorld) -> None:
    acme = _acme(web)
    staff = web.world.staff
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/sites/new")
    # An error from the service, next to its field, in the API's words.
    r = b.post(f"/accounts/{acme['id']}/sites", {"domain": "www.other.test", "enabled": "on"})
    assert r.status_code == 422
    assert ('id="e-domain">&#39;www.other.test&#39; is not under one of this account&#39;s '
            "domains") in r.text
    r = b.post(f"/accounts/{acme['id']}/sites",
               {"domain": "www.acme.test", "aliases": "acme.test", "enabled": "on"})
    assert r.status_code == 303
    site = staff.ok("GET", "/sites")["items"][0]
    assert site["domain"] == "www.acme.test" and site["aliases"] == ["acme.test"]
    r = b.get(f"/accounts/{acme['id']}")
    assert f'data-poll="site:{site["id"]}"' in r.text and "pending" in r.text
    b.get(f"/sites/{site['id']}")
    r = b.post(f"/sites/{site['id']}", {"aliases": "", "php": "8.2", "https": "off",
                                        "enabled": "on"})
    assert r.status_code == 303
    assert staff.ok("GET", f"/sites/{site['id']}")["php"] == "8.2"
    b.get(f"/accounts/{acme['id']}")
    assert b.post(f"/enabled/site/{site['id']}", {}).status_code == 303
    assert staff.ok("GET", f"/sites/{site['id']}")["enabled"] is False
    r = b.get(f"/delete/site/{site['id']}")
    assert "archived on the web host" in r.text
    assert b.post(f"/delete/site/{site['id']}").status_code == 303
    assert staff.ok("GET", f"/sites/{site['id']}")["status"] == "deleting"
    status = b.get(f"/status?o=site:{site['id']}").json()
    assert status[f"site:{site['id']}"]["status"] == "deleting"
    events = staff.ok("GET", "/audit-events", params={"object_type": "sites"})["items"]
    assert [e["action"] for e in events] == ["create", "update", "update", "delete"]


def test_mailbox_alias_list_database_pages(web: WebWorld) -> None:
    acme = _acme(web)
    web.world.host(["db"])
    web.world.host(["lists"])
    staff = web.world.staff
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/mailboxes/new")
    r = b.post(f"/accounts/{acme['id']}/mailboxes",
               {"address": "info@acme.test", "password": "x", "quota_mb": "100"})
    assert r.status_code == 422 and 'id="e-password">must be at least 8 characters' in r.text
    r = b.post(f"/accounts/{acme['id']}/mailboxes",
               {"address": "info@acme.test", "password": "long enough", "quota_mb": "100",
                "enabled": "on"})
    assert r.status_code == 303
    mb = staff.ok("GET", "/mailboxes")["items"][0]
    assert mb["address"] == "info@acme.test" and mb["quota_mb"] == 100
    r = b.get(f"/delete/mailbox/{mb['id']}")
    assert "mail is archived" in r.text
    b.get(f"/accounts/{acme['id']}/aliases/new")
    r = b.post(f"/accounts/{acme['id']}/aliases",
               {"address": "info@acme.test", "destinations": "x@example.org"})
    assert r.status_code == 422 and "already in use" in r.text
    r = b.post(f"/accounts/{acme['id']}/aliases",
               {"address": "hello@acme.test", "destinations": "x@example.org\ny@example.org"})
    assert r.status_code == 303
    assert staff.ok("GET", "/mail-aliases")["items"][0]["destinations"] == [
        "x@example.org", "y@example.org"]
    b.get(f"/accounts/{acme['id']}/lists/new")
    r = b.post(f"/accounts/{acme['id']}/lists",
               {"address": "news@acme.test", "owners": "alice@acme.test", "policy": "moderate"})
    assert r.status_code == 303, r.text
    assert staff.ok("GET", "/lists")["items"][0]["policy"] == "moderate"
    b.get(f"/accounts/{acme['id']}/databases/new")
    r = b.post(f"/accounts/{acme['id']}/databases", {"name": "other_blog", "engine": "mariadb"})
    assert r.status_code == 422 and 'id="e-name"' in r.text
    r = b.post(f"/accounts/{acme['id']}/databases", {"name": "acme_blog", "engine": "mariadb"})
    assert r.status_code == 303
    b.get(f"/accounts/{acme['id']}/dbusers/new")
    r = b.post(f"/accounts/{acme['id']}/dbusers", {"name": "acme_app", "databases": "acme_blog"})
    assert r.status_code == 201
    password = re.search(r'<code class="secret" id="once">([^<]+)</code>', r.text)
    assert password and len(password[1]) >= 20
    user = staff.ok("GET", "/database-users")["items"][0]
    assert user["databases"] == ["acme_blog"]
    r = b.get(f"/dbusers/{user['id']}")
    assert password[1] not in r.text  # shown once, never again
    r = b.get(f"/accounts/{acme['id']}")
    for text in ("info@acme.test", "hello@acme.test", "news@acme.test", "acme_blog", "acme_app"):
        assert text in r.text


def test_members_and_tokens(web: WebWorld) -> None:
    acme = _acme(web)
    web.user("bob@acme.test")
    b = web.browser()
    b.login("alice@acme.test")
    b.get(f"/accounts/{acme['id']}/members")
    r = b.post(f"/accounts/{acme['id']}/members", {"email": "nobody@acme.test", "role": "viewer"})
    assert r.status_code == 422 and "no user has this email" in r.text
    r = b.post(f"/accounts/{acme['id']}/members", {"email": "bob@acme.test", "role": "manager"})
    assert r.status_code == 200 and "bob@acme.test added." in r.text
    b.get("/tokens")
    r = b.post("/tokens", {"name": "ci", "scopes": "admin"})
    assert r.status_code == 422 and "only staff users may hold" in r.text
    r = b.post("/tokens", {"name": "ci", "scopes": "account:acme", "expires": "2099-01-01"})
    assert r.status_code == 201
    secret = re.search(r'id="once">(kb_[^<]+)<', r.text)
    assert secret
    me = web.world.client.get("/api/v1/users/me",
                              headers={"Authorization": f"Bearer {secret[1]}"})
    assert me.json()["email"] == "alice@acme.test"
    assert secret[1] not in b.get("/tokens").text
    token_id = re.search(r'action="/tokens/(\d+)/revoke"', b.get("/tokens").text)
    assert token_id
    assert b.post(f"/tokens/{token_id[1]}/revoke").status_code == 303
    me = web.world.client.get("/api/v1/users/me",
                              headers={"Authorization": f"Bearer {secret[1]}"})
    assert me.status_code == 401


def test_another_accounts_pages_answer_404(web: WebWorld) -> None:
    acme = _acme(web)
    other = web.world.account("other")
    web.world.domain(other, "other.test")
    staff = web.world.staff
    site = staff.ok("POST", "/sites", 201, json={"account_id": other["id"],
                                                 "domain": "www.other.test"})
    b = web.browser()
    b.login("alice@acme.test")
    for path in (f"/accounts/{other['id']}", f"/accounts/{other['id']}/sites/new",
                 f"/sites/{site['id']}", f"/delete/site/{site['id']}",
                 f"/accounts/{other['id']}/members", "/staff", "/staff/hosts"):
        r = b.get(path)
        assert r.status_code in (404, 403), (path, r.status_code)
        assert "www.other.test" not in r.text
    assert b.get(f"/sites/{site['id']}").status_code == 404
    assert b.post(f"/delete/site/{site['id']}").status_code == 404
    assert b.post(f"/sites/{site['id']}", {"enabled": "on"}).status_code == 404
    assert b.get(f"/status?o=site:{site['id']}").json()[f"site:{site['id']}"]["status"] == "gone"
    assert staff.ok("GET", f"/sites/{site['id']}")["status"] == "pending"
    assert b.get(f"/accounts/{acme['id']}").status_code == 200


def test_a_form_posted_without_its_csrf_token_is_refused(web: WebWorld) -> None:
    acme = _acme(web)
    b = web.browser()
    b.login("alice@acme.test")
    r = b.post(f"/accounts/{acme['id']}/sites", {"domain": "www.acme.test"}, csrf=False)
    assert r.status_code == 403 and "Form refused" in r.text
    r = b.post(f"/accounts/{acme['id']}/sites", {"domain": "www.acme.test", "csrf": "forged"},
               csrf=False)
    assert r.status_code == 403
    assert web.world.staff.ok("GET", "/sites")["items"] == []
    assert b.post("/logout", csrf=False).status_code == 403
    anon = web.browser()
    r = anon.client.post("/login", data={"email": "alice@acme.test", "password": PASSWORD})
    assert r.status_code == 403


def test_french_follows_the_choice_then_accept_language(web: WebWorld) -> None:
    acme = _acme(web)
    anon = web.browser()
    r = anon.get("/login", headers={"Accept-Language": "fr-CA,fr;q=0.9,en;q=0.5"})
    assert 'lang="fr"' in r.text and "Se connecter" in r.text
    b = web.browser()
    b.login("alice@acme.test")
    r = b.get(f"/accounts/{acme['id']}")
    assert "Mailboxes" in r.text and r.headers["content-language"] == "en"
    assert b.post("/language", {"lang": "fr", "next": f"/accounts/{acme['id']}"}).status_code == 303
    r = b.get(f"/accounts/{acme['id']}", headers={"Accept-Language": "en"})
    assert "Boîtes aux lettres" in r.text and r.headers["content-language"] == "fr"
    with web.db.session() as s:
        assert s.scalars(select(WebPrefs.lang)).one() == "fr"
    b.get(f"/accounts/{acme['id']}/sites/new")
    r = b.post(f"/accounts/{acme['id']}/sites", {"domain": "www.other.test"})
    assert "n’est sous aucun des domaines de ce compte" in r.text  # the API's message, in French


def test_staff_pages(web: WebWorld) -> None:
    web.user("ops@provider.test", staff=True)
    h = web.world.host(["web"])
    b = web.browser()
    b.login("ops@provider.test")
    assert b.get("/").headers["location"] == "/staff"
    b.get("/staff/accounts")
    r = b.post("/staff/accounts", {"slug": "Bad Slug", "name": "x", "email": "a@b.test"})
    assert r.status_code == 422 and 'id="e-slug"' in r.text
    r = b.post("/staff/accounts", {"slug": "coop", "name": "Coop", "email": "c@coop.test"})
    assert r.status_code == 303
    account_id = int(r.headers["location"].rsplit("/", 1)[1])
    b.get(f"/staff/accounts/{account_id}")
    r = b.post(f"/staff/accounts/{account_id}", {"status": "suspended", "quota_sites": "3"})
    assert r.status_code == 200
    acc = web.world.staff.ok("GET", f"/accounts/{account_id}")
    assert acc["status"] == "suspended" and acc["quotas"]["sites"] == 3
    r = b.get(f"/staff/hosts/{h['id']}")
    assert h["host_key_fingerprint"] in r.text
    assert b.post(f"/staff/hosts/{h['id']}/reconcile").status_code == 303
    assert web.world.staff.ok("GET", f"/hosts/{h['id']}")["desired_generation"] == h[
        "desired_generation"] + 1
    r = b.get("/staff/audit?action=reconcile")
    assert "reconcile" in r.text and "ops@provider.test" in r.text
    # View as a viewer: audited, and read-only.
    b.get(f"/staff/accounts/{account_id}")
    assert b.post(f"/staff/accounts/{account_id}/view-as").status_code == 303
    r = b.get(f"/accounts/{account_id}")
    assert r.status_code == 200 and "read-only" in r.text and "New site" not in r.text
    assert b.get("/staff/hosts").status_code == 403
    assert b.get(f"/accounts/{account_id}/sites/new").status_code == 403
    with web.db.session() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "impersonate")).one()
        assert event.actor_email == "ops@provider.test" and event.account_id == account_id
    assert b.post("/staff/view-as/stop").status_code == 303
    assert b.get("/staff/hosts").status_code == 200
    b.get("/staff/hosts")
    r = b.post("/staff/hosts", {"name": "web9", "address": "10.0.0.9", "host_key": "garbage",
                                "roles": "web"})
    assert r.status_code == 422 and 'id="e-host_key"' in r.text
    assert b.get("/staff/failed").status_code == 200
