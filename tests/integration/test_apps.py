"""Applications on real test hosts: platforms built from Debian's WordPress and MediaWiki,
sites installed on them and logged in to over HTTP, updates to a derived build (served),
and a broken build that rolls every site back to its backup."""

from __future__ import annotations

import datetime as dt
import hashlib
import http.client
import io
import json
import tarfile
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

from panel.apps.service import run_due_updates
from panel.testhosts import TestHost
from tests.integration.conftest import Panel, http_get
from tests.integration.test_lifecycle import _put, _run

pytestmark = pytest.mark.integration


def _platform(panel: Panel, name: str, source: dict[str, Any]) -> dict[str, Any]:
    return panel.staff.ok("POST", "/platforms", 201, json={"name": name, "source": source})  # type: ignore[no-any-return]


def _derived(
    panel: Panel, tmp: Path, base: dict[str, Any], name: str, edits: dict[str, str]
) -> dict[str, Any]:
    """A build derived from ``base``'s artifact: ``edits`` {path: PHP code put first in it
    (after its opening tag)}, packed as a sysadmin's archive and made a platform."""
    src = panel.settings.data_dir / "platforms" / f"{base['sha256']}.tar.gz"
    out = tmp / f"{name}.tar.gz"
    with tarfile.open(src) as tin, tarfile.open(out, "w:gz") as tout:
        for member in tin.getmembers():
            data = tin.extractfile(member).read() if member.isfile() else None  # type: ignore[union-attr]
            path = member.name.removeprefix("./")
            if data is not None and path in edits:
                text = data.decode()
                assert text.startswith("<?php"), path
                data = ("<?php " + edits[path] + "\n" + text[5:]).encode()
                member.size = len(data)
            tout.addfile(member, io.BytesIO(data) if data is not None else None)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    return _platform(panel, name, {"type": "archive", "path": str(out), "sha256": sha})


def _site(panel: Panel, slug: str, domain: str, web: dict[str, Any]) -> tuple[Any, dict[str, Any]]:
    account = panel.world.account(slug)
    panel.world.domain(account, domain)
    member = panel.world.member(account)
    site = member.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": domain, "php": "8.2"}
    )
    assert panel.reconcile(web["id"]).result == "applied"
    return member, site


def _install(
    panel: Panel, member: Any, site: dict[str, Any], platform: dict[str, Any], title: str
) -> str:
    got = member.ok(
        "POST",
        f"/sites/{site['id']}/app",
        202,
        json={"platform_id": platform["id"], "title": title, "admin_email": "admin@example.org"},
    )
    task = _run(panel, {"id": got["task_id"]})
    assert task["status"] == "succeeded", task["log"]
    app = member.ok("GET", f"/sites/{site['id']}/app")
    assert app["status"] == "active" and app["version"] == platform["version"], app
    return str(got["admin_password"])


def _http(
    host: TestHost, name: str, path: str, form: dict[str, str] | None = None, cookie: str = ""
) -> tuple[int, list[tuple[str, str]], str]:
    """One request (a POST of ``form`` if given), no redirect followed: status, headers,
    body."""
    conn = http.client.HTTPConnection(host.address, 80, timeout=30)
    try:
        headers = {"Host": name, "Cookie": cookie}
        if form is None:
            conn.request("GET", path, headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST", path, urllib.parse.urlencode(form), headers)
        with conn.getresponse() as response:
            return response.status, response.getheaders(), response.read().decode()
    finally:
        conn.close()


def _wp_login(web: TestHost, domain: str, user: str, password: str) -> bool:
    status, headers, _body = _http(
        web, domain, "/wp-login.php",
        {"log": user, "pwd": password, "wp-submit": "Log In", "testcookie": "1"},
        cookie="wordpress_test_cookie=WP%20Cookie%20check",
    )  # fmt: skip
    cookies = " ".join(v for k, v in headers if k.lower() == "set-cookie")
    return status == 302 and "wordpress_logged_in_" in cookies


def test_wordpress_install_login_update_and_rollback(
    panel: Panel, web1: TestHost, web2: TestHost, db1: TestHost, bk1: TestHost, tmp_path: Path
) -> None:
    web = panel.register(web1)
    panel.register(db1, roles=["db"])
    panel.register(bk1, roles=["backup"])
    wp = _platform(panel, "wordpress-6.1.9", {"type": "debian", "package": "wordpress"})
    assert wp["app"] == "wordpress" and wp["version"] == "6.1.9", wp
    good = _derived(
        panel, tmp_path, wp, "wordpress-6.1.9-k2", {"index.php": "header('X-Konbit-Build: k2');"}
    )
    broken = _derived(
        panel, tmp_path, wp, "wordpress-6.1.9-broken",
        {"wp-includes/template-loader.php": "throw new Exception('broken build');"},
    )  # fmt: skip
    assert good["sha256"] != wp["sha256"] != broken["sha256"]

    sites = []
    for slug, domain, title in (
        ("alpha", "alpha.test", "Alpha Coop"),
        ("beta", "beta.test", "Beta News"),
    ):
        member, site = _site(panel, slug, domain, web)
        password = _install(panel, member, site, wp, title)
        code, body = http_get(web1, domain)
        assert code == 200 and title in body, body[:500]
        assert _wp_login(web1, domain, "admin", password)
        assert not _wp_login(web1, domain, "admin", password + "x")
        sites.append((member, site, domain, title, password))

    # The platform is root's and read-only; the site's own files are the account's.
    member, site, domain, title, password = sites[0]
    root = f"/var/www/konbit/alpha/www/{domain}"
    _put(
        web1, f"{root}/touch.php",
        "<?php $p = realpath(__DIR__ . '/index.php');"
        " echo @file_put_contents($p, 'x') === false ? 'denied' : 'WROTE', ' ', $p, ' ';"
        " echo @mkdir(dirname($p) . '/mine') ? 'MADE' : 'denied';",
        "alpha",
    )  # fmt: skip
    code, body = http_get(web1, domain, "/touch.php")
    assert code == 200 and body.startswith("denied /srv/konbit/platforms/wordpress-6.1.9/"), body
    assert body.endswith("denied"), body
    assert web1.exec(
        ["stat", "-c", "%U %a", "/srv/konbit/platforms/wordpress-6.1.9/index.php"]
    ).stdout.split() == ["root", "644"]

    # A site installed by hand is found by the scan, read as its own user: a link to a
    # file only root may read tells nothing (it would say DokuWiki 2099-01-01).
    _site(panel, "delta", "delta.test", web)
    hand = "/var/www/konbit/delta/www/delta.test"
    web1.exec(["install", "-d", "-o", "delta", f"{hand}/wp-includes"], check=True)
    _put(web1, f"{hand}/wp-includes/version.php", "<?php\n$wp_version = '5.8.3';\n", "delta")
    _site(panel, "epsilon", "epsilon.test", web)
    web1.exec(
        ["sh", "-c", 'echo 2099-01-01 > /root/VERSION && chmod 600 /root/VERSION && ln -s'
         ' /root/VERSION "$1/VERSION"', "x", "/var/www/konbit/epsilon/www/epsilon.test"],
        check=True,
    )  # fmt: skip
    scan = _run(panel, panel.staff.ok("POST", "/apps/scan", 202))
    assert scan["status"] == "succeeded" and scan["result"]["apps"] == {"wordpress": 3}, scan
    inv = {e["domain"]: e for e in panel.staff.ok("GET", "/apps/inventory")["items"]}
    assert set(inv) == {"alpha.test", "beta.test", "delta.test"}, inv
    assert inv["delta.test"] | {"scanned_at": None} == {
        "site_id": inv["delta.test"]["site_id"], "domain": "delta.test",
        "account_id": inv["delta.test"]["account_id"], "account": "delta", "app": "wordpress",
        "version": "5.8.3", "platform": None, "newest_version": "6.1.9", "behind": True,
        "scanned_at": None,
    }  # fmt: skip
    assert inv["alpha.test"]["platform"] == wp["name"] and inv["alpha.test"]["behind"] is True
    text = panel.staff.get("/apps/inventory", headers={"Accept": "text/csv"}).text
    lines = text.splitlines()
    assert lines[0].startswith("site_id,domain,account,app,version,platform") and len(lines) == 4
    assert any(line.startswith(f"{inv['delta.test']['site_id']},delta.test,delta,wordpress,5.8.3,,")
               for line in lines), text  # fmt: skip
    status = {s["app"]: s for s in panel.staff.ok("GET", "/apps/status")["items"]}
    assert status["wordpress"] | {"newest_platform": broken["name"]} == {
        "app": "wordpress", "newest_platform": broken["name"], "newest_version": "6.1.9",
        "sites": 3, "on_platforms": 2, "by_hand": 1, "behind": 3,
    }, status  # fmt: skip

    # A broken build in batches of one: the first site is rolled back, the update stops
    # there and the second is not tried.
    task = panel.staff.ok(
        "POST", f"/platforms/{wp['id']}/update", 202, json={"target_id": broken["id"], "batch": 1}
    )
    task = _run(panel, task)
    outcomes = [task["result"]["sites"][str(s["id"])] for _m, s, *_ in sites]
    assert outcomes[0].startswith("rolled back") and outcomes[1].startswith("not tried"), task
    assert task["status"] == "failed" and "1 not tried" in task["error"], task["error"]

    # A broken build: each site rolled back to its backup, still serving its own content.
    task = panel.staff.ok(
        "POST", f"/platforms/{wp['id']}/update", 202, json={"target_id": broken["id"]}
    )
    task = _run(panel, task)
    assert task["status"] == "failed", task["log"]
    assert all(r.startswith("rolled back") for r in task["result"]["sites"].values()), task[
        "result"
    ]
    for member, site, domain, title, password in sites:
        code, body = http_get(web1, domain)
        assert code == 200 and title in body, body[:300]
        assert _wp_login(web1, domain, "admin", password)
        app = member.ok("GET", f"/sites/{site['id']}/app")
        assert app["platform_id"] == wp["id"] and app["status"] == "active", app

    # Retire the broken build; the good one is newest.  An automatic update in the
    # platform's maintenance window moves both sites (the broken build refused them, but
    # this is another target); the window's next round starts nothing more.
    panel.staff.ok("PATCH", f"/platforms/{broken['id']}", json={"enabled": False})
    now = dt.datetime.now(dt.UTC)
    window = {"auto_update": True, "window_weekday": now.weekday(), "window_hour": now.hour}
    got = panel.staff.ok("PATCH", f"/platforms/{wp['id']}", json=window)
    assert got["auto_update"] is True and got["window_hours"] == 2, got
    with panel.world.db.session() as session:
        started = run_due_updates(session, now)
        session.commit()
    with panel.world.db.session() as session:
        assert run_due_updates(session, now + dt.timedelta(minutes=1)) == []
    assert len(started) == 1, started
    task = panel.staff.ok("GET", f"/tasks/{started[0]}")
    assert task["params"]["to"] == good["id"] and task["params"]["until"], task
    task = _run(panel, task)
    assert task["status"] == "succeeded", task["log"]
    for member, site, domain, title, password in sites:
        code, headers, body = _http(web1, domain, "/")
        assert code == 200 and title in body and ("X-Konbit-Build", "k2") in headers
        assert member.ok("GET", f"/sites/{site['id']}/app")["platform_id"] == good["id"]
        assert _wp_login(web1, domain, "admin", password)
    status = {s["app"]: s for s in panel.staff.ok("GET", "/apps/status")["items"]}
    assert status["wordpress"]["behind"] == 1, status  # delta, installed by hand

    # A site on a platform moved to another web host: the platform goes there first, and
    # the site serves its own content and logins from there.
    web_b = panel.register(web2, settings={"web_server": "apache2"})
    member, site, domain, title, password = sites[0]
    move = {"host_id": web_b["id"]}
    task = _run(panel, panel.staff.ok("POST", f"/sites/{site['id']}/migrate", 202, json=move))
    assert task["status"] == "succeeded" and "platform wordpress-6.1.9-k2 is on" in task["log"]
    code, headers, body = _http(web2, domain, "/")
    assert code == 200 and title in body and ("X-Konbit-Build", "k2") in headers, body[:300]
    assert _wp_login(web2, domain, "admin", password)


def test_mediawiki_install_and_login(panel: Panel, web1: TestHost, db1: TestHost) -> None:
    web = panel.register(web1)
    panel.register(db1, roles=["db"])
    mw = _platform(panel, "mediawiki-1.39.17", {"type": "debian", "package": "mediawiki"})
    assert mw["app"] == "mediawiki" and mw["version"] == "1.39.17", mw
    member, site = _site(panel, "gamma", "gamma.test", web)
    password = _install(panel, member, site, mw, "Gamma Wiki")
    code, body = http_get(web1, "gamma.test", "/index.php?title=Main_Page")
    assert code == 200 and "Gamma Wiki" in body, body[:500]
    # MediaWiki's API login: a token (in a session), then clientlogin with the password.
    for pw, expected in ((password + "x", "FAIL"), (password, "PASS")):
        _code, headers, body = _http(
            web1, "gamma.test", "/api.php?action=query&meta=tokens&type=login&format=json"
        )
        token = json.loads(body)["query"]["tokens"]["logintoken"]
        cookie = "; ".join(v.split(";")[0] for k, v in headers if k.lower() == "set-cookie")
        form = {"action": "clientlogin", "username": "Admin", "password": pw, "logintoken": token,
                "loginreturnurl": "http://gamma.test/", "format": "json"}  # fmt: skip
        _code, _headers, body = _http(web1, "gamma.test", "/api.php", form, cookie)
        assert json.loads(body)["clientlogin"]["status"] == expected, body
