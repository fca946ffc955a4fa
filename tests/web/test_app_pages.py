"""Applications in the panel: a member installs one on a site (the admin password shown on
that answer only) or picks one in the new-site form; staff build, retire and enable
platforms, see "N sites behind" as the API says it, and start an update.  Tasks are only
queued here: no host runs them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy import select

from panel.apps.models import Platform, SiteApp
from panel.audit.models import AuditEvent
from panel.tasks.models import Task
from tests.api.test_apps import _archive
from tests.web.conftest import Browser, WebWorld
from tests.web.test_pages import _acme

FR = {"Accept-Language": "fr"}
WP_62 = b"<?php\n$wp_version = '6.2';\n$wp_db_version = 53496;\n"


def _platform(web: WebWorld, tmp: Path, name: str = "wordpress-6.1.9", **kw: Any) -> Any:
    folder = tmp / name
    folder.mkdir()
    return web.world.staff.ok(
        "POST", "/platforms", 201, json={"name": name, "source": _archive(folder, **kw)}
    )


def _php_site(web: WebWorld, account: dict[str, Any], domain: str = "www.acme.test") -> Any:
    return web.world.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": domain, "php": "8.2"}
    )


def _world(web: WebWorld, role: str = "owner") -> dict[str, Any]:
    acme = _acme(web, role)
    web.world.host(["db"])  # an install makes the site's database
    return acme


def _login(web: WebWorld, email: str = "alice@acme.test") -> Browser:
    b = web.browser()
    assert b.login(email).status_code == 303
    return b


def _apps(web: WebWorld) -> list[SiteApp]:
    with web.db.session() as s:
        return list(s.scalars(select(SiteApp).order_by(SiteApp.id)))


def _tasks(web: WebWorld) -> list[Task]:
    with web.db.session() as s:
        return list(s.scalars(select(Task).order_by(Task.id)))


def _password(html: str) -> str:
    m = re.search(r'<code class="secret" id="once">([^<]+)</code>', html)
    assert m, html
    return m.group(1)


def test_a_member_installs_an_app_and_sees_its_password_once(
    web: WebWorld, tmp_path: Path
) -> None:
    acme = _world(web)
    platform = _platform(web, tmp_path)
    site = _php_site(web, acme)
    b = _login(web)
    page = f"/sites/{site['id']}/app"
    assert f'href="{page}"' in b.get(f"/sites/{site['id']}").text
    r = b.get(page)
    assert r.status_code == 200 and "Application of www.acme.test" in r.text
    assert f'<option value="{platform["id"]}">wordpress 6.1.9 (wordpress-6.1.9)</option>' in r.text
    assert 'value="alice@acme.test"' in r.text  # the admin e-mail proposed: the member's

    form = {"platform_id": str(platform["id"]), "title": "Acme blog",
            "admin_user": "alice", "admin_email": "alice@acme.test"}
    r = b.post(page, {**form, "admin_user": "a b", "title": "<b>"})
    assert r.status_code == 422
    assert 'id="e-admin_user">must be 3-60 characters: a letter, then letters' in r.text
    assert 'id="e-title">may not hold &lt; &gt; \\ { }' in r.text
    r = b.post(page, {**form, "platform_id": ""})
    assert r.status_code == 422 and 'id="e-platform_id">Field required' in r.text
    assert _apps(web) == [] and _tasks(web) == []

    r = b.post(page, form)
    assert r.status_code == 202 and r.headers["cache-control"] == "no-store"
    password = _password(r.text)
    assert len(password) >= 20 and "shown only this once" in r.text
    (app,) = _apps(web)
    (task,) = _tasks(web)
    assert (app.site_id, app.platform_id, app.title, app.admin_user, app.status) == (
        site["id"], platform["id"], "Acme blog", "alice", "installing")
    assert app.admin_hash and password not in app.admin_hash
    assert (task.kind, task.status, task.site_id, task.params["site_app_id"]) == (
        "app-install", "queued", site["id"], app.id)
    assert f'href="/tasks/{task.id}">Follow the installation: task {task.id}' in r.text

    # Never again: not on reload, not on the task's page, not in the audit.
    again = b.get(page)
    assert password not in again.text and 'id="once"' not in again.text
    assert "installing" in again.text and 'data-refresh="5"' in again.text
    assert f'href="/tasks/{task.id}"' in again.text and "Acme blog" in again.text
    assert password not in b.get(f"/tasks/{task.id}").text
    with web.db.session() as s:
        assert all(password not in str(e.changes) for e in s.scalars(select(AuditEvent)))
    # A second install is refused by the service, said on the page.
    r = b.post(page, form)
    assert r.status_code == 409 and "www.acme.test already has its application." in r.text
    assert len(_apps(web)) == 1 and len(_tasks(web)) == 1

    # In French, with the service's refusal in French too.
    r = b.get(page, headers=FR)
    assert r.headers["content-language"] == "fr"
    assert "Application de www.acme.test" in r.text and "installation en cours" in r.text
    r = b.post(page, form, headers=FR)
    assert r.status_code == 409 and "www.acme.test a déjà son application." in r.text
    assert "installation d’application" in b.get(f"/tasks/{task.id}", headers=FR).text


def test_a_static_site_gets_no_form_and_the_service_says_why(
    web: WebWorld, tmp_path: Path
) -> None:
    acme = _world(web)
    platform = _platform(web, tmp_path)
    site = web.world.staff.ok("POST", "/sites", 201,
                              json={"account_id": acme["id"], "domain": "www.acme.test"})
    b = _login(web)
    r = b.get(f"/sites/{site['id']}/app")
    assert "This site is static" in r.text and 'action="/sites/' not in r.text
    r = b.post(f"/sites/{site['id']}/app", {"platform_id": str(platform["id"]), "title": "T",
                                            "admin_user": "admin", "admin_email": "a@acme.test"})
    assert r.status_code == 422
    assert "www.acme.test is a static site: give it a PHP version first" in r.text
    assert _apps(web) == []


def test_applications_of_another_account_are_404_and_viewers_only_read(
    web: WebWorld, tmp_path: Path
) -> None:
    acme = _world(web)
    platform = _platform(web, tmp_path)
    site = _php_site(web, acme)
    beta = web.world.account("beta")
    web.member(beta, "bob@beta.test")
    web.member(acme, "vic@acme.test", "viewer")
    form = {"platform_id": str(platform["id"]), "title": "Mine now", "admin_user": "admin",
            "admin_email": "bob@beta.test"}
    bob = _login(web, "bob@beta.test")
    assert bob.get(f"/sites/{site['id']}/app").status_code == 404
    assert bob.post(f"/sites/{site['id']}/app", form).status_code == 404
    assert bob.get("/sites/999999/app").status_code == 404
    vic = _login(web, "vic@acme.test")
    r = vic.get(f"/sites/{site['id']}/app")
    assert r.status_code == 200 and "No application is installed on this site." in r.text
    assert vic.post(f"/sites/{site['id']}/app", form).status_code == 403
    alice = _login(web)
    alice.get(f"/sites/{site['id']}/app")
    assert alice.post(f"/sites/{site['id']}/app", form, csrf=False).status_code == 403
    assert _apps(web) == [] and _tasks(web) == []
    # Installed, it stays the account's own: its page and its task are 404 to others.
    r = alice.post(f"/sites/{site['id']}/app", form)
    assert r.status_code == 202
    (task,) = _tasks(web)
    assert bob.get(f"/sites/{site['id']}/app").status_code == 404
    assert bob.get(f"/tasks/{task.id}").status_code == 404
    assert "Mine now" not in bob.get(f"/accounts/{beta['id']}").text


def test_members_get_403_on_the_staff_pages(web: WebWorld, tmp_path: Path) -> None:
    _world(web)
    platform = _platform(web, tmp_path)
    b = _login(web)
    assert b.get("/staff/apps").status_code == 403
    b.get("/profile")  # a page with the session's token
    src = {"name": "wordpress-x", "source": "archive", "path": "/x.tgz", "sha256": "0" * 64}
    assert b.post("/staff/apps/platforms", src).status_code == 403
    assert b.post(f"/staff/apps/platforms/{platform['id']}/enabled",
                  {"enabled": "0"}).status_code == 403
    assert b.post("/staff/apps/update", {"from_id": str(platform["id"]),
                                         "target_id": str(platform["id"])}).status_code == 403
    with web.db.session() as s:
        assert [p.enabled for p in s.scalars(select(Platform))] == [True]
    assert _tasks(web) == []
    assert 'href="/staff/apps"' not in b.get("/profile").text


def test_the_new_site_form_installs_the_chosen_application(
    web: WebWorld, tmp_path: Path
) -> None:
    acme = _world(web)
    b = _login(web)
    new = f"/accounts/{acme['id']}/sites/new"
    assert 'name="platform_id"' not in b.get(new).text  # nothing offered: no choice shown
    platform = _platform(web, tmp_path)
    r = b.get(new)
    assert "An application to install (optional)" in r.text
    assert f'<option value="{platform["id"]}">wordpress 6.1.9' in r.text

    # None chosen: the site as before.
    r = b.post(f"/accounts/{acme['id']}/sites",
               {"domain": "plain.acme.test", "php": "8.2", "https": "off", "enabled": "on",
                "platform_id": ""})
    assert r.status_code == 303 and _apps(web) == []

    # Chosen: the site is made, then the install starts for it (titled with its domain).
    site = {"domain": "www.acme.test", "php": "8.2", "https": "off", "enabled": "on",
            "platform_id": str(platform["id"]), "title": ""}
    r = b.post(f"/accounts/{acme['id']}/sites", site)
    assert r.status_code == 202, r.text
    assert "Site www.acme.test created." in r.text and "not installed yet" not in r.text
    password = _password(r.text)
    (app,) = _apps(web)
    (task,) = _tasks(web)
    assert (app.title, app.admin_user, app.admin_email) == ("www.acme.test", "admin",
                                                            "alice@acme.test")
    assert (task.kind, task.site_id, task.status) == ("app-install", app.site_id, "queued")
    assert password not in b.get(f"/sites/{app.site_id}/app").text

    # A site form refused keeps the choice; a refused install leaves the site, said why.
    r = b.post(f"/accounts/{acme['id']}/sites", {**site, "domain": "www.other.test",
                                                 "title": "Kept"})
    assert r.status_code == 422 and 'value="Kept"' in r.text
    assert f'<option value="{platform["id"]}" selected>' in r.text
    r = b.post(f"/accounts/{acme['id']}/sites", {**site, "domain": "static.acme.test",
                                                 "php": "", "title": "Static"})
    assert r.status_code == 422
    assert "Site static.acme.test created. Its application is not installed yet" in r.text
    assert "static.acme.test is a static site: give it a PHP version first" in r.text
    assert len(_apps(web)) == 1
    r = b.get(new, headers=FR)
    assert "Une application à installer (facultatif)" in r.text


def test_staff_build_retire_and_update_platforms(web: WebWorld, tmp_path: Path) -> None:
    acme = _world(web)
    web.user("ops@provider.test", staff=True)
    b = _login(web, "ops@provider.test")
    assert 'href="/staff/apps"' in b.get("/staff").text
    r = b.get("/staff/apps")
    assert r.status_code == 200 and "No platform yet: build one below." in r.text
    assert "No site runs a known application yet." in r.text

    # A build from an archive, refused field by field, then made.
    folder = tmp_path / "a"
    folder.mkdir()
    src = _archive(folder)
    build = {"name": "wordpress-6.1.9", "source": "archive", "package": "wordpress",
             "path": src["path"], "sha256": src["sha256"]}
    r = b.post("/staff/apps/platforms", {**build, "name": "WP 6", "path": "rel/wp.tgz",
                                         "sha256": "nope"})
    assert r.status_code == 422
    assert 'id="e-name">must be 2-63 characters' in r.text
    assert 'id="e-path">must be an absolute path on the panel machine' in r.text
    assert 'id="e-sha256">must be 64 hexadecimal digits' in r.text
    r = b.post("/staff/apps/platforms", {**build, "sha256": "0" * 64})
    assert r.status_code == 422 and 'id="e-source">wp.tar.gz&#39;s sha256 is' in r.text
    assert 'value="wordpress-6.1.9"' in r.text  # the form keeps what was typed
    r = b.post("/staff/apps/platforms", build)
    assert r.status_code == 303 and r.headers["location"] == "/staff/apps"
    r = b.get("/staff/apps")
    assert "Platform wordpress-6.1.9 built: wordpress 6.1.9." in r.text
    r = b.post("/staff/apps/platforms", build)
    assert r.status_code == 409 and "A platform named wordpress-6.1.9 exists" in r.text
    (old,) = web.world.staff.ok("GET", "/platforms")["items"]

    # Two sites on it, then a newer build: both behind, as /apps/status says.
    web.member(acme, "ann@acme.test")
    member = _login(web, "ann@acme.test")
    for domain in ("www.acme.test", "blog.acme.test"):
        site = _php_site(web, acme, domain)
        member.get(f"/sites/{site['id']}/app")
        assert member.post(f"/sites/{site['id']}/app", {
            "platform_id": str(old["id"]), "title": domain, "admin_user": "admin",
            "admin_email": "ann@acme.test"}).status_code == 202
    new = _platform(web, tmp_path, "wordpress-6.2", version=WP_62)
    (status,) = web.world.staff.ok("GET", "/apps/status")["items"]
    assert (status["newest_platform"], status["sites"], status["behind"]) == (
        "wordpress-6.2", 2, 2)
    r = b.get("/staff/apps")
    row = re.search(r"<tr>\s*<td>wordpress</td>\s*<td>wordpress-6.2</td>.*?</tr>", r.text, re.S)
    assert row and "2 sites behind" in row.group(0)
    assert re.search(r"<td>wordpress-6.1.9</td>.*?<td>2</td>\s*<td>yes</td>", r.text, re.S)
    assert "Hand-installed" not in r.text  # the inventory's section is left to its change
    assert "2 sites en retard" in b.get("/staff/apps", headers=FR).text

    # Retire the old one (members no longer see it), then bring it back.
    r = b.post(f"/staff/apps/platforms/{old['id']}/enabled", {"enabled": "0"})
    assert r.status_code == 303
    assert "Platform wordpress-6.1.9 retired" in b.get("/staff/apps").text
    assert [p["name"] for p in web.world.staff.ok("GET", "/platforms")["items"]
            if p["enabled"]] == ["wordpress-6.2"]
    assert f'value="{old["id"]}"' not in member.get(f"/accounts/{acme['id']}/sites/new").text
    assert b.post(f"/staff/apps/platforms/{old['id']}/enabled",
                  {"enabled": "1"}).status_code == 303
    assert web.world.staff.ok("GET", "/platforms")["items"][0]["enabled"] is True
    with web.db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "platform",
                                                    AuditEvent.action == "update")).all()
        assert [e.changes["enabled"]["new"] for e in events] == [False, True]

    # Update: refused while the installs run (the service's word), then started.
    update = {"from_id": str(old["id"]), "target_id": str(new["id"]), "batch": "5"}
    r = b.post("/staff/apps/update", update)
    assert r.status_code == 409 and "is installing; wait for it and try again" in r.text
    r = b.post("/staff/apps/update", {**update, "batch": "0"})
    assert r.status_code == 422 and 'id="e-batch">must be 1 or more' in r.text
    r = b.post("/staff/apps/update", {**update, "target_id": str(old["id"])})
    assert r.status_code == 422
    assert 'id="e-target_id">choose another wordpress platform' in r.text
    with web.db.session() as s:
        for app in s.scalars(select(SiteApp)):
            app.status = "active"
        s.commit()
    r = b.post("/staff/apps/update", update)
    assert r.status_code == 303
    task = _tasks(web)[-1]
    assert (task.kind, task.status, task.account_id) == ("app-update", "queued", None)
    assert task.params["from"] == old["id"] and task.params["to"] == new["id"]
    assert task.params["batch"] == 5 and len(task.params["site_ids"]) == 2
    r = b.get("/staff/apps")
    assert f"Update started: task {task.id}." in r.text and f'href="/tasks/{task.id}"' in r.text
    assert f"Update started: task {task.id}." not in b.get("/staff/apps").text  # said once


def test_staff_see_sites_behind_download_the_inventory_and_set_a_window(
    web: WebWorld, tmp_path: Path
) -> None:
    from panel.apps.models import SiteInventory
    from panel.core.db import utcnow

    acme = _world(web)
    old = _platform(web, tmp_path)
    _platform(web, tmp_path, "wordpress-6.2", version=WP_62)
    site = _php_site(web, acme)
    hand = _php_site(web, acme, "hand.acme.test")
    with web.db.session() as s:
        s.add(SiteApp(site_id=site["id"], account_id=acme["id"], platform_id=old["id"],
                      app="wordpress", title="W", admin_user="admin", admin_email="a@acme.test",
                      status="active", version="6.1.9"))  # fmt: skip
        s.add(SiteInventory(site_id=hand["id"], account_id=acme["id"], app="wordpress",
                            version="5.8.3", scanned_at=utcnow()))  # fmt: skip
        s.commit()
    web.user("ops@provider.test", staff=True)
    b = _login(web, "ops@provider.test")
    r = b.get("/staff/apps")
    section = r.text[r.text.index('id="h-inventory"') :]
    rows = re.findall(r'<td><a href="/sites/(\d+)">([^<]+)</a></td>', section)
    assert rows == [(str(site["id"]), "www.acme.test"), (str(hand["id"]), "hand.acme.test")]
    assert "<td>installed by hand</td>" in section and "<td>5.8.3</td>" in section
    row = re.search(r"<tr>\s*<td>wordpress</td>\s*<td>wordpress-6.2</td>.*?</tr>", r.text, re.S)
    assert row and re.search(r"<td>2</td>\s*<td>1</td>\s*<td>1</td>", row.group(0)), row
    assert "2 sites behind" in row.group(0)
    fr = b.get("/staff/apps", headers=FR).text
    assert "Sites en retard" in fr and "installé à la main" in fr

    got = b.get("/staff/apps/inventory.csv")
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/csv")
    assert got.text.splitlines()[0].startswith("site_id,domain,account,app,version,platform")
    assert len(got.text.splitlines()) == 3

    r = b.post("/staff/apps/scan", {})
    assert r.status_code == 303
    scan = _tasks(web)[-1]
    assert (scan.kind, scan.status) == ("app-scan", "queued")
    assert f"Scan started: task {scan.id}." in b.get("/staff/apps").text

    window = {"auto_id": str(old["id"]), "auto_update": "1", "window_weekday": "6",
              "window_hour": "2", "window_hours": "3"}  # fmt: skip
    r = b.post("/staff/apps/auto", {**window, "window_hour": "24"})
    assert r.status_code == 422 and 'id="e-window_hour">' in r.text
    r = b.post("/staff/apps/auto", {**window, "auto_id": ""})
    assert r.status_code == 422 and 'id="e-auto_id">' in r.text
    assert b.post("/staff/apps/auto", window).status_code == 303
    r = b.get("/staff/apps")
    assert "Automatic updates of wordpress-6.1.9 on" in r.text
    assert "<td>Sunday, 02:00–05:00 UTC</td>" in r.text
    with web.db.session() as s:
        p = s.get_one(Platform, old["id"])
        assert (p.auto_update, p.window_weekday, p.window_hour, p.window_hours) == (True, 6, 2, 3)
    assert b.post("/staff/apps/auto", {**window, "auto_update": "0"}).status_code == 303
    assert "Automatic updates of wordpress-6.1.9 off." in b.get("/staff/apps").text

    # Members: none of it.
    member = _login(web)
    assert member.get("/staff/apps/inventory.csv").status_code in (403, 404)
    assert member.post("/staff/apps/scan", {}).status_code in (403, 404)
    assert member.post("/staff/apps/auto", window).status_code in (403, 404)
    assert len(_tasks(web)) == 1
