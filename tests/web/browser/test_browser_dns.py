"""In chromium: a member opens a domain's DNS zone from the domains list, picks a type in
the record form (the page script shows only that type's inputs), adds an MX record, sees
a refused TXT said at its input, and deletes the record after confirming.  No DNS host
serves the zone here: the page says what the API says."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.browser.test_browser import _login
from tests.web.conftest import WebWorld

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_member_adds_a_record_through_the_zone_form(
    web: WebWorld, chromium: Any, live_url: str, shots: Any
) -> None:
    web.world.host(["dns"], settings={"dns_ns_name": "ns1.provider.test"})
    acme = web.world.account("acme")
    domain = web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    page = chromium.new_context(locale="en-US").new_page()
    _login(page, live_url, "alice@acme.test")

    page.goto(f"{live_url}/accounts/{acme['id']}/domains")
    page.get_by_role("link", name="DNS zone acme.test").click()
    expect(page.get_by_role("heading", name="DNS zone of acme.test")).to_be_visible()
    expect(page.locator("#name-servers")).to_have_text("ns1.provider.test")
    # The script shows the chosen type's inputs only (an A record's address at first).
    expect(page.locator("#f-address")).to_be_visible()
    expect(page.locator("#f-exchange")).to_be_hidden()
    page.get_by_label("Type", exact=True).select_option("MX")
    expect(page.locator("#f-address")).to_be_hidden()
    expect(page.locator("#f-text")).to_be_hidden()
    page.get_by_label("Mail server (MX)").fill("mx.elsewhere.example")
    page.get_by_label("Preference (MX)").fill("5")
    shots(page, "1-mx-form")
    page.get_by_role("button", name="Add record").click()

    expect(page.get_by_role("status")).to_have_text("Record @ MX added.")
    row = page.get_by_role("row", name="added by the account")
    expect(row).to_contain_text("5 mx.elsewhere.example.")
    shots(page, "2-added")

    page.get_by_label("Type", exact=True).select_option("TXT")
    page.get_by_label("Name", exact=True).fill("note")
    page.get_by_label("Text (TXT)").fill('say "hi"')
    page.get_by_role("button", name="Add record").click()
    expect(page.locator("#e-text")).to_contain_text("without double quotes or backslashes")
    expect(page.get_by_label("Text (TXT)")).to_have_value('say "hi"')
    expect(page.locator("#f-text")).to_be_visible()  # the chosen type stays chosen
    shots(page, "3-refused")

    row.get_by_role("link", name="Delete @ MX").click()
    expect(page.get_by_role("heading", name="Delete the record acme.test MX?")).to_be_visible()
    page.get_by_role("button", name="Yes, delete this record").click()
    expect(page.get_by_role("status")).to_have_text("Record @ MX deleted.")
    expect(page.get_by_role("row", name="added by the account")).to_have_count(0)
    records = web.world.staff.ok("GET", f"/domains/{domain['id']}/records")["items"]
    assert [r["source"] for r in records] == ["dns servers"]
