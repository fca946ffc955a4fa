"""A member backs a site up from its "Backups and tasks" page, loses a file, restores the
backup in place after confirming, and follows both tasks; the worker's part runs on real
test hosts (web1 and a backup host)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect
from sqlalchemy import select

from panel.tasks.models import Task
from panel.tasks.run.dispatch import run_task
from panel.testhosts import TestHost
from tests.integration.conftest import Panel, http_get, wait_for
from tests.web.browser.test_browser import _login
from tests.web.conftest import WebWorld

pytestmark = [pytest.mark.integration, pytest.mark.browser]


def _run_newest(panel: Panel) -> int:
    """What the worker does with the task the page just queued."""
    with panel.world.db.session() as session:
        task_id = session.scalars(select(Task.id).order_by(Task.id.desc()).limit(1)).one()
    run_task(panel.world.db, panel.settings, task_id, panel.plugins)
    return task_id


def test_member_backs_up_and_restores_a_site_from_its_page(
    panel: Panel,
    web1: TestHost,
    bk1: TestHost,
    web: WebWorld,
    chromium: Any,
    live_url: str,
    shots: Any,
) -> None:
    host = panel.register(web1)
    panel.register(bk1, roles=["backup"])
    papa = web.world.account("papa")
    web.world.domain(papa, "papa.test")
    web.member(papa, "paula@papa.test")
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": papa["id"], "domain": "papa.test"}
    )
    assert panel.reconcile(host["id"]).result == "applied"
    page_file = "/var/www/konbit/papa/www/papa.test/keep.txt"
    web1.exec(["sh", "-c", 'echo "keep me" > "$1" && chown papa "$1"', "x", page_file], check=True)
    wait_for(web1, "papa.test", 200, "keep me", "/keep.txt")

    context = chromium.new_context(locale="en-US")
    page = context.new_page()
    _login(page, live_url, "paula@papa.test")
    page.get_by_role("link", name="Backups and tasks papa.test").click()
    expect(page.get_by_role("heading", name="Backups and tasks of papa.test")).to_be_visible()
    expect(page.get_by_text("No backup yet.")).to_be_visible()
    page.get_by_role("button", name="Back up now").click()
    expect(page.get_by_role("status")).to_contain_text("Backup started")
    backup_task = _run_newest(panel)
    page.goto(f"{live_url}/tasks/{backup_task}")
    expect(page.locator(".status").first).to_have_text("succeeded")
    expect(page.locator("#task-log")).to_contain_text("files:")
    shots(page, "1-backup-task")

    # The member loses a file, then puts the backup back after a confirmation.
    web1.exec(["rm", page_file], check=True)
    assert http_get(web1, "papa.test", "/keep.txt")[0] == 404
    page.goto(f"{live_url}/sites/{site['id']}/lifecycle")
    row = page.get_by_role("row", name=re.compile("manual"))
    shots(page, "2-lifecycle")
    row.get_by_role("link", name=re.compile("Restore in place")).click()
    confirm = page.get_by_role("button", name="Yes, replace papa.test with this backup")
    expect(confirm).to_be_visible()
    shots(page, "3-confirm-restore")
    confirm.click()
    restore_task = _run_newest(panel)
    assert restore_task != backup_task
    page.goto(f"{live_url}/tasks/{restore_task}")
    expect(page.locator(".status").first).to_have_text("succeeded")
    expect(page.locator("#task-log")).to_contain_text("the replaced ones are in")
    shots(page, "4-restore-task")
    wait_for(web1, "papa.test", 200, "keep me", "/keep.txt")

    # In French, the same page.
    page.goto(f"{live_url}/profile")
    page.get_by_label("Language").select_option("fr")
    page.get_by_role("button", name="Change language").click()
    page.goto(f"{live_url}/sites/{site['id']}/lifecycle")
    expect(page.get_by_role("heading", name="Sauvegardes et tâches de papa.test")).to_be_visible()
    shots(page, "5-lifecycle-fr")
    context.close()
