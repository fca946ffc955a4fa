"""In chromium: a member opens a PHP site's application page, installs WordPress from the
platform staff built, copies the admin password shown once, follows the install's task
and finds the password gone on the next visit; screenshots of the pages.  The task is
only queued (no test host runs it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.api.test_apps import _archive
from tests.web.browser.test_browser import _login
from tests.web.conftest import WebWorld

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_member_installs_an_application_and_sees_its_password_once(
    web: WebWorld, chromium: Any, live_url: str, shots: Any, tmp_path: Path
) -> None:
    web.world.host(["web"])  # placement only: the site stays pending here
    web.world.host(["db"])
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    staff = web.world.staff
    platform = staff.ok("POST", "/platforms", 201,
                        json={"name": "wordpress-6.1.9", "source": _archive(tmp_path)})
    site = staff.ok("POST", "/sites", 201,
                    json={"account_id": acme["id"], "domain": "www.acme.test", "php": "8.2"})
    page = chromium.new_context(locale="en-US").new_page()
    _login(page, live_url, "alice@acme.test")

    page.goto(f"{live_url}/sites/{site['id']}")
    page.get_by_role("link", name="Application", exact=True).click()
    expect(page.get_by_role("heading", name="Application of www.acme.test")).to_be_visible()
    page.get_by_label("Application", exact=True).select_option(str(platform["id"]))
    page.get_by_label("Title").fill("Acme news")
    page.get_by_label("Administrator's user name").fill("alice")
    expect(page.get_by_label("Administrator's e-mail")).to_have_value("alice@acme.test")
    shots(page, "1-install-form")
    page.get_by_role("button", name="Install").click()

    expect(page.get_by_role("status")).to_contain_text("shown only this once")
    password = page.locator("#once").inner_text()
    assert re.fullmatch(r"[A-Za-z0-9_-]{20,}", password), password
    expect(page.locator(".status").first).to_have_text("installing")
    shots(page, "2-password-once")

    page.get_by_role("link", name=re.compile(r"Follow the installation: task \d+")).click()
    expect(page.get_by_role("heading", name=re.compile(r"Task \d+ · app-install"))).to_be_visible()
    expect(page.locator(".status").first).to_have_text("queued")
    shots(page, "3-task")

    page.goto(f"{live_url}/sites/{site['id']}/app")
    expect(page.get_by_role("heading", name="Application of www.acme.test")).to_be_visible()
    expect(page.locator("#once")).to_have_count(0)
    assert password not in page.content()
    expect(page.get_by_text("Acme news")).to_be_visible()
    shots(page, "4-installed")
