"""DokuWiki on a real test host: a platform built from Debian's package, a wiki installed
without a database, logged in to through DokuWiki's own login form with the admin
password shown once, a page written and read back; the wiki's conf/ and data/ never
served, the platform never writable by the site's user; then an update to a derived build
(its backup carries only files) that still serves the page."""

from __future__ import annotations

import html
import re
import time
from pathlib import Path

import pytest

from panel.testhosts import TestHost
from tests.integration.conftest import Panel, http_get
from tests.integration.test_apps import _derived, _http, _install, _platform, _site
from tests.integration.test_lifecycle import _put, _run

pytestmark = pytest.mark.integration

DOMAIN = "wiki.test"
ROOT = f"/var/www/konbit/zeta/www/{DOMAIN}"


class Browser:
    """One visitor of the wiki: its cookies kept from answer to answer, as a browser
    would (DokuWiki's session and, once logged in, its auth cookie)."""

    def __init__(self, web: TestHost) -> None:
        self.web = web
        self.cookies: dict[str, str] = {}

    def go(
        self, path: str, form: dict[str, str] | None = None
    ) -> tuple[int, list[tuple[str, str]], str]:
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        status, headers, body = _http(self.web, DOMAIN, path, form, cookie)
        for key, value in headers:
            if key.lower() == "set-cookie":
                name, _, rest = value.partition("=")
                val = rest.split(";", 1)[0]
                if val in ("", "deleted"):
                    self.cookies.pop(name, None)
                else:
                    self.cookies[name] = val
        return status, headers, body

    def hidden(self, path: str, form_id: str) -> dict[str, str]:
        """The hidden fields of the form ``form_id`` on the page at ``path``."""
        status, _h, body = self.go(path)
        found = re.search(rf'<form[^>]*id="{form_id}".*?</form>', body, re.S)
        assert found, (status, body[:2000])
        fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', found[0])
        return {name: html.unescape(value) for name, value in fields}

    def login(self, user: str, password: str) -> bool:
        """DokuWiki's login form (do=login: u, p and the form's sectok), then whether the
        wiki shows this visitor as logged in (a logout link)."""
        form = self.hidden("/doku.php?id=start&do=login", "dw__login")
        assert form.get("sectok") is not None and form.get("do") == "login", form
        self.go("/doku.php?id=start", {**form, "u": user, "p": password})
        _s, _h, body = self.go("/doku.php?id=start")
        return "do=logout" in body


def test_dokuwiki_install_login_page_and_update(
    panel: Panel, web1: TestHost, bk1: TestHost, tmp_path: Path
) -> None:
    web = panel.register(web1)
    panel.register(bk1, roles=["backup"])
    started = time.monotonic()
    dw = _platform(panel, "dokuwiki-2022-07-31b", {"type": "debian", "package": "dokuwiki"})
    built = time.monotonic()
    # The version DokuWiki's VERSION file tells (Debian's 2022-07-31a with the b hotfix).
    assert dw["app"] == "dokuwiki" and dw["version"] == "2022-07-31b", dw
    assert dw["source"].startswith("Debian package dokuwiki 0.0.20220731.a-"), dw
    member, site = _site(panel, "zeta", DOMAIN, web)
    password = _install(panel, member, site, dw, "Zeta Wiki")
    installed = time.monotonic()
    print(f"\nbuild {built - started:.1f}s ({dw['size']} bytes), install {installed - built:.1f}s")
    app = member.ok("GET", f"/sites/{site['id']}/app")
    assert app["database_id"] is None and app["version"] == "2022-07-31b", app
    assert member.ok("GET", "/databases")["items"] == []  # no database for a wiki

    code, body = http_get(web1, DOMAIN, "/doku.php?id=start")
    assert code == 200 and "Zeta Wiki" in body, body[:500]
    assert not Browser(web1).login("admin", password + "x")
    admin = Browser(web1)
    assert admin.login("admin", password)

    # A page written as the admin through the edit form, read back by anyone.
    edit = admin.hidden("/doku.php?id=notes&do=edit", "dw__editform")
    assert edit["id"] == "notes" and edit["sectok"], edit
    text = "====== Notes ======\n\nThe coop meets on **Tuesdays**.\n\n<code php>echo 1;</code>\n"
    form = {**edit, "wikitext": text, "summary": "first", "do[save]": "Save"}
    status, _h, body = admin.go("/doku.php?id=notes", form)
    assert status in (302, 303), (status, body[:1000])
    code, body = http_get(web1, DOMAIN, "/doku.php?id=notes")
    assert code == 200 and "<strong>Tuesdays</strong>" in body, body[:1000]
    assert '<pre class="code php"><span class="kw1">echo</span>' in body, body  # GeSHi's
    # Debian's jQuery, jQuery UI and jquery-cookie, served from the platform's copies.
    code, js = http_get(web1, DOMAIN, "/lib/exe/jquery.php")
    assert code == 200 and "jquery.org/license" in js and '$.ui.version="1.13' in js, js[:300]
    code, js = http_get(web1, DOMAIN, "/lib/exe/js.php")
    assert code == 200 and "removeCookie" in js, js[:300]
    page = web1.exec(["stat", "-c", "%U", f"{ROOT}/.dokuwiki/data/pages/notes.txt"], check=True)
    assert page.stdout.strip() == "zeta"
    assert web1.exec(["stat", "-c", "%a", f"{ROOT}/.dokuwiki"]).stdout.strip() == "700"

    # The wiki's own files are never served; the platform's private parts are not even
    # in the document root.
    for path in (
        "/.dokuwiki/conf/users.auth.php",
        "/.dokuwiki/conf/local.php",
        "/.dokuwiki/data/pages/notes.txt",
        "/.platform/conf/dokuwiki.php",
    ):
        assert _http(web1, DOMAIN, path)[0] == 403, path
    for path in ("/conf/local.php", "/data/pages/notes.txt", "/inc/preload.php", "/install.php"):
        assert _http(web1, DOMAIN, path)[0] == 404, path

    # The platform is root's and read-only for the site's own PHP.
    _put(
        web1, f"{ROOT}/touch.php",
        "<?php foreach (['doku.php', 'lib/exe/fetch.php'] as $f) {"
        " $p = realpath(__DIR__ . '/' . $f);"
        " echo @file_put_contents($p, 'x') === false ? 'denied' : 'WROTE', ' ', $p, ' '; }"
        " echo @mkdir(realpath(__DIR__ . '/lib') . '/mine') ? 'MADE' : 'denied';",
        "zeta",
    )  # fmt: skip
    code, body = http_get(web1, DOMAIN, "/touch.php")
    plat = "/srv/konbit/platforms/dokuwiki-2022-07-31b"
    assert code == 200 and body == (
        f"denied {plat}/doku.php denied {plat}/lib/exe/fetch.php denied"
    ), body

    # A broken build: DokuWiki's own boot fails after the switch, the backup (files only:
    # the wiki's pages are files) is restored, the page is still there.
    edits = {"inc/init.php": "throw new Exception('broken build');"}
    broken = _derived(panel, tmp_path, dw, "dokuwiki-2022-07-31b-broken", edits)
    to = {"target_id": broken["id"]}
    task = _run(panel, panel.staff.ok("POST", f"/platforms/{dw['id']}/update", 202, json=to))
    assert task["status"] == "failed", task["log"]
    assert task["result"]["sites"][str(site["id"])].startswith("rolled back"), task["result"]
    code, body = http_get(web1, DOMAIN, "/doku.php?id=notes")
    assert code == 200 and "<strong>Tuesdays</strong>" in body, body[:1000]
    assert member.ok("GET", f"/sites/{site['id']}/app")["platform_id"] == dw["id"]

    # An update to a derived build: backed up, switched, caches purged, healthy; the page
    # and the admin's login are still there.
    panel.staff.ok("PATCH", f"/platforms/{broken['id']}", json={"enabled": False})
    edits = {"doku.php": "header('X-Konbit-Build: k2');"}
    k2 = _derived(panel, tmp_path, dw, "dokuwiki-2022-07-31b-k2", edits)
    to = {"target_id": k2["id"]}
    task = _run(panel, panel.staff.ok("POST", f"/platforms/{dw['id']}/update", 202, json=to))
    assert task["status"] == "succeeded", task["log"]
    assert task["result"]["sites"][str(site["id"])].startswith("updated"), task["result"]
    status, headers, body = _http(web1, DOMAIN, "/doku.php?id=notes")
    assert status == 200 and ("X-Konbit-Build", "k2") in headers, headers
    assert "<strong>Tuesdays</strong>" in body, body[:1000]
    assert member.ok("GET", f"/sites/{site['id']}/app")["platform_id"] == k2["id"]
    assert Browser(web1).login("admin", password)
