"""The open provisioner contract, end to end: a plugin the panel has never heard of.

The toy plugin (tests/plugins/konbit_toy) is written only against ``provisioners.api``
and installed by its own entry point. With no panel file naming it, it brings a host role
(``toy``), a host setting (``toy_motd``) and an object kind (``toy_note``) that members
create through ``/api/v1/objects/toy_note``; the worker's reconcile puts them on a real
test host over SSH, its checker's refusal freezes only the object it names, and a delete
takes the file away.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from panel.testhosts.lab import Lab, TestHost
from tests.integration.conftest import Panel, read

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def toy1(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("toy1", authorized_keys=[panel_key])  # a bare Debian host with sshd
    host.wait_ready(60)
    return host


def test_a_plugin_written_against_the_api_alone_is_reconciled_on_a_host(
    panel: Panel, toy1: TestHost
) -> None:
    world = panel.world
    acme, beta = world.account("acme"), world.account("beta")
    h = panel.register(toy1, roles=["toy"], settings={"toy_motd": "bonjour"})
    assert h["settings"]["toy_motd"] == "bonjour"  # the plugin's settings model, checked

    bad = panel.staff.request(
        "POST",
        "/objects/toy_note",
        json={"account_id": acme["id"], "name": "n1", "spec": {"text": "x; rm -rf /"}},
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "spec.text"
    bad_setting = panel.staff.request(
        "PATCH", f"/hosts/{h['id']}", json={"settings": {"toy_motd": "$(reboot)"}}
    )
    assert bad_setting.status_code == 422
    assert bad_setting.json()["errors"][0]["field"] == "settings.toy_motd"

    note = panel.staff.ok(
        "POST",
        "/objects/toy_note",
        201,
        json={"account_id": acme["id"], "name": "n1", "spec": {"text": "hello world"}},
    )
    assert (note["status"], note["host_id"]) == ("pending", h["id"])
    other = panel.staff.ok(
        "POST",
        "/objects/toy_note",
        201,
        json={"account_id": beta["id"], "name": "n2", "spec": {"text": "beta", "mode": "private"}},
    )

    report = panel.reconcile(h["id"])
    assert report.result == "applied", report.error
    live = "/etc/konbit/live/toy"
    assert read(toy1, f"{live}/note-{note['id']}.txt") == "hello world\n"
    assert read(toy1, f"{live}/motd") == "bonjour\n"
    assert read(toy1, "/var/lib/konbit-toy/count") == "2\n"  # the plugin's step ran
    assert Path(toy1.path(f"{live}/note-{other['id']}.txt")).stat().st_mode & 0o777 == 0o600
    assert panel.staff.ok("GET", f"/objects/toy_note/{note['id']}")["status"] == "active"
    assert panel.reconcile(h["id"]).result == "noop"

    # The plugin's checker refuses one note: that note is failed with the checker's words;
    # the host keeps what it had, and the other note still changes.
    panel.staff.ok(
        "PATCH", f"/objects/toy_note/{note['id']}", json={"spec": {"text": "FORBIDDEN words"}}
    )
    panel.staff.ok(
        "PATCH", f"/objects/toy_note/{other['id']}", json={"spec": {"text": "beta again"}}
    )
    assert panel.reconcile(h["id"]).result == "failed"
    failed = panel.staff.ok("GET", f"/objects/toy_note/{note['id']}")
    assert failed["status"] == "failed"
    assert "may not start with FORBIDDEN" in failed["status_reason"]
    assert read(toy1, f"{live}/note-{note['id']}.txt") == "hello world\n"
    assert panel.reconcile(h["id"]).result == "applied"  # the rest goes on without it
    assert read(toy1, f"{live}/note-{other['id']}.txt") == "beta again\n"
    assert panel.staff.ok("GET", f"/objects/toy_note/{other['id']}")["status"] == "active"

    # Delete: the host drops the file, then the row goes.
    panel.staff.ok("DELETE", f"/objects/toy_note/{note['id']}", 202)
    assert panel.reconcile(h["id"]).result == "applied"
    assert not Path(toy1.path(f"{live}/note-{note['id']}.txt")).exists()
    assert read(toy1, "/var/lib/konbit-toy/count") == "1\n"
    assert panel.staff.request("GET", f"/objects/toy_note/{note['id']}").status_code == 404
