"""A member and a staff member use the panel in chromium; sites go live on a real host."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from panel.testhosts import TestHost
from tests.integration.conftest import Panel
from tests.web.conftest import PASSWORD, WebWorld

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _login(page: Any, base: str, email: str) -> None:
    page.goto(f"{base}/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def test_member_creates_a_site_sees_it_go_live_then_a_mailbox_in_french(
    panel: Panel, web1: TestHost, web: WebWorld, chromium: Any, live_url: str, shots: Any
) -> None:
    host = panel.register(web1)
    web.world.host(["mail"])  # placement only: the mailbox stays pending in this test
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    _login(page, live_url, "alice@acme.test")
    expect(page.get_by_role("heading", name=re.compile("Acme"))).to_be_visible()
    shots(page, "1-dashboard")

    page.get_by_role("link", name="New site").click()
    page.get_by_label("Domain").fill("www.acme.test")
    page.get_by_label("Other names (one per line)").fill("acme.test")
    shots(page, "2-new-site")
    page.get_by_role("button", name="Create site").click()
    row = page.get_by_role("row", name=re.compile("www.acme.test"))
    expect(row.locator(".status")).to_have_text("pending")
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    # No reload: the page script polls the status and shows the change.
    expect(row.locator(".status")).to_have_text("active", timeout=10_000)
    shots(page, "3-site-active")

    site = context.new_page()
    response = site.goto("http://www.acme.test/")
    assert response is not None and response.status == 200
    expect(site.locator("body")).to_contain_text("www.acme.test")
    shots(site, "4-site-served")
    site.close()

    page.get_by_role("link", name="New mailbox").click()
    page.get_by_label("Address").fill("info@acme.test")
    page.get_by_label("Password").fill("short")
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.locator("#e-password")).to_have_text("must be at least 8 characters")
    page.get_by_label("Password").fill("a long mailbox password")
    page.get_by_role("button", name="Create mailbox").click()
    expect(page.get_by_role("row", name=re.compile("info@acme.test"))).to_be_visible()

    page.get_by_label("Language").select_option("fr")
    page.get_by_role("button", name="Change language").click()
    expect(page.get_by_role("heading", name="Boîtes aux lettres")).to_be_visible()
    expect(page.locator("html")).to_have_attribute("lang", "fr")
    expect(page.get_by_role("row", name=re.compile("www.acme.test")).locator(".status")
           ).to_have_text("actif")
    expect(page.get_by_role("row", name=re.compile("info@acme.test")).locator(".status")
           ).to_have_text("en attente")
    shots(page, "5-dashboard-fr")
    context.close()


def test_other_accounts_are_404_and_forms_need_their_token(
    panel: Panel, web1: TestHost, web: WebWorld, chromium: Any, live_url: str, shots: Any
) -> None:
    panel.register(web1)
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    other = web.world.account("other")
    web.world.domain(other, "other.test")
    theirs = web.world.staff.ok("POST", "/sites", 201,
                                json={"account_id": other["id"], "domain": "www.other.test"})
    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    _login(page, live_url, "alice@acme.test")
    for path in (f"/accounts/{other['id']}", f"/sites/{theirs['id']}",
                 f"/delete/site/{theirs['id']}"):
        response = page.goto(live_url + path)
        assert response is not None and response.status == 404, path
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        assert "www.other.test" not in page.content()
    shots(page, "404")
    # The browser's own cookies, a form without its token: refused.
    refused = page.request.post(f"{live_url}/accounts/{acme['id']}/sites",
                                form={"domain": "www.acme.test"})
    assert refused.status == 403
    page.goto(f"{live_url}/accounts/{acme['id']}/sites/new")
    page.evaluate("document.querySelectorAll('main input[name=csrf]').forEach(e => e.remove())")
    page.get_by_label("Domain").fill("www.acme.test")
    page.get_by_role("button", name="Create site").click()
    expect(page.get_by_role("heading", name="Form refused")).to_be_visible()
    shots(page, "csrf-refused")
    assert web.world.staff.ok("GET", "/sites", params={"account_id": acme["id"]})["items"] == []
    context.close()


def test_staff_see_a_failed_apply_with_its_log(
    panel: Panel, web1: TestHost, web: WebWorld, chromium: Any, live_url: str, shots: Any
) -> None:
    host = panel.register(web1)
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    # Valid as a name, longer than nginx's server_names_hash_bucket_size: nginx -t fails.
    long_name = ".".join(["a" * 60, "b" * 60, "acme.test"])
    web.world.staff.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": long_name})
    failed = panel.reconcile(host["id"])
    assert failed.result == "failed"
    web.user("ops@provider.test", staff=True)
    page = chromium.new_context(locale="en-US").new_page()
    _login(page, live_url, "ops@provider.test")
    page.get_by_role("link", name="Failed", exact=True).click()
    expect(page.locator("main")).to_contain_text("server_names_hash")
    shots(page, "failed")
    page.locator(f'a[href="/staff/applies/{failed.apply_id}"]').click()
    expect(page.get_by_role("heading", name=re.compile(f"Apply {failed.apply_id}"))).to_be_visible()
    expect(page.locator("#apply-log")).not_to_be_empty()
    expect(page.locator("main")).to_contain_text("server_names_hash")
    shots(page, "apply-log")
    page.goto(f"{live_url}/staff/hosts/{host['id']}")
    expect(page.locator("main")).to_contain_text("failed")
    shots(page, "host")
