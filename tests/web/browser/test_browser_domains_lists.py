"""In chromium: a member adds a domain, then fills a mailing list's roster by pasting
addresses, and changes a list setting; screenshots of the pages."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect

from tests.web.browser.test_browser import _login
from tests.web.conftest import WebWorld

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def test_member_adds_a_domain_and_fills_a_roster(
    web: WebWorld, chromium: Any, live_url: str, shots: Any
) -> None:
    web.world.host(["lists"])  # placement only: the list stays pending here
    acme = web.world.account("acme")
    web.world.domain(acme, "acme.test")
    web.member(acme, "alice@acme.test")
    mlist = web.world.staff.ok("POST", "/lists", 201, json={
        "account_id": acme["id"], "address": "news@acme.test", "owners": ["alice@acme.test"]})
    page = chromium.new_context(locale="en-US").new_page()
    _login(page, live_url, "alice@acme.test")

    page.get_by_role("link", name="Domains", exact=True).click()
    page.get_by_label("Domain name").fill("coop.example")
    page.get_by_role("button", name="Add domain").click()
    expect(page.get_by_role("status")).to_have_text("Domain coop.example added.")
    expect(page.get_by_role("row", name=re.compile("coop.example"))).to_be_visible()
    shots(page, "domains")

    page.goto(f"{live_url}/lists/{mlist['id']}")
    page.get_by_role("link", name="Roster").click()
    page.get_by_label("Addresses (one a line, or separated by commas)").fill(
        "ann@example.org, bob@example.org\nCarl <carl@example.org>")
    page.get_by_role("button", name="Import", exact=True).click()
    expect(page.get_by_role("status")).to_have_text(
        "Imported: 3 added, 0 already on the list.")
    expect(page.get_by_role("row", name=re.compile("carl@example.org"))).to_be_visible()
    shots(page, "roster")

    page.get_by_role("link", name="List settings").click()
    page.get_by_label("Largest post (KB)").fill("256")
    page.get_by_label("Replies go to").select_option("list")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_role("status")).to_have_text("Settings of news@acme.test saved.")
    shots(page, "list-settings")
    assert web.world.staff.ok("GET", f"/lists/{mlist['id']}")["settings"] == {
        "max_message_size": 256, "reply_to": "list"}
