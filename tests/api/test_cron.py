"""Cron jobs through the API (no host): hostile input refused with the field named, a
job attached to a site, "run now" as a task, tenancy of run and runs."""

from __future__ import annotations

from typing import Any

import pytest

from panel.cron import service
from provisioners.api import TransportError
from tests.conftest import World

GOOD = {"schedule": "*/5 * * * *", "command": "php bin/cron.php >> var/cron.log"}


def _site(world: World, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    site = world.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": f"{slug}.test"}
    )
    return account, site


def _job(
    world: World, account: dict[str, Any], site: dict[str, Any], name: str = "", **spec: Any
) -> Any:
    name = name or f"{account['slug']}-j"
    body = {"account_id": account["id"], "site_id": site["id"], "name": name}
    return world.staff.ok("POST", "/objects/cron_job", 201, json={**body, "spec": {**GOOD, **spec}})


def test_hostile_names_schedules_and_commands_are_422_naming_the_field(world: World) -> None:
    world.host(["web"])
    account, site = _site(world, "acme")
    member = world.member(account)
    base: dict[str, Any] = {
        "account_id": account["id"],
        "site_id": site["id"],
        "name": "nightly",
        "spec": GOOD,
    }
    cases = [
        ({**base, "name": "../../etc/cron.d/x"}, "name"),
        ({**base, "name": "a.b"}, "name"),  # cron ignores names with a dot: none reach it
        ({**base, "spec": {**GOOD, "schedule": "* * * * * root id"}}, "spec.schedule"),
        ({**base, "spec": {**GOOD, "schedule": "@reboot"}}, "spec.schedule"),
        ({**base, "spec": {**GOOD, "schedule": "61 * * * *"}}, "spec.schedule"),
        ({**base, "spec": {**GOOD, "schedule": "*\n* * * * * root id"}}, "spec.schedule"),
        ({**base, "spec": {**GOOD, "command": "true\n* * * * * root id"}}, "spec.command"),
        ({**base, "spec": {**GOOD, "command": "true\rx"}}, "spec.command"),
        ({**base, "spec": {**GOOD, "command": "x" * 5000}}, "spec.command"),
        ({**base, "spec": {**GOOD, "output": "mail"}}, "spec.mail_to"),
        (
            {**base, "spec": {**GOOD, "output": "mail", "mail_to": "x@y\nBcc: z@w.org"}},
            "spec.mail_to",
        ),
        ({**base, "spec": {**GOOD, "user": "root"}}, "spec.user"),
        ({k: v for k, v in base.items() if k != "site_id"}, "site_id"),
    ]
    for body, field in cases:
        r = member.request("POST", "/objects/cron_job", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], (field, r.text)
    made = member.ok("POST", "/objects/cron_job", 201, json=base)
    assert (made["status"], made["site_id"], made["host_id"]) == ("pending", site["id"], None)
    assert made["spec"] == {
        **GOOD,
        "output": "keep",
        "mail_to": None,
        "enabled": True,
        "timeout_seconds": 3600,
    }
    r = member.request(
        "PATCH", f"/objects/cron_job/{made['id']}", json={"spec": {**GOOD, "schedule": "@often"}}
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "spec.schedule"


def test_run_now_is_a_task_one_at_a_time_and_another_accounts_job_is_404(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.host(["web"])
    acme, acme_site = _site(world, "acme")
    beta, beta_site = _site(world, "beta")
    job = _job(world, acme, acme_site)
    other = _job(world, beta, beta_site)
    member = world.member(acme)

    task = member.ok("POST", f"/objects/cron_job/{job['id']}/run", 202)
    assert (task["kind"], task["status"], task["site_id"]) == (
        "cron-run",
        "queued",
        acme_site["id"],
    )
    assert task["params"]["cron_job_id"] == job["id"]
    assert member.ok("GET", "/tasks", params={"kind": "cron-run"})["items"][0]["id"] == task["id"]
    again = member.request("POST", f"/objects/cron_job/{job['id']}/run")
    assert again.status_code == 409 and f"Task {task['id']}" in again.json()["detail"]
    second = _job(world, acme, acme_site, "acme-second")
    member.ok("POST", f"/objects/cron_job/{second['id']}/run", 202)  # another job may run

    for path in (f"/objects/cron_job/{other['id']}/run", "/objects/cron_job/999999/run"):
        assert member.request("POST", path).status_code == 404
    assert member.request("GET", f"/objects/cron_job/{other['id']}/runs").status_code == 404
    viewer = world.member(acme, "viewer")
    assert viewer.request("POST", f"/objects/cron_job/{job['id']}/run").status_code == 403

    # The runs are read from the host: an unreachable host is a 503 that says so.
    def unreachable(*args: Any, **kwargs: Any) -> Any:
        raise TransportError("connection refused")

    monkeypatch.setattr(service, "connect", unreachable)
    r = viewer.request("GET", f"/objects/cron_job/{job['id']}/runs")
    assert r.status_code == 503 and "did not answer" in r.json()["detail"]


def test_a_toy_object_is_not_a_cron_job(world: World) -> None:
    world.host(["toy"])
    acme = world.account("acme")
    note = world.staff.ok(
        "POST",
        "/objects/toy_note",
        201,
        json={"account_id": acme["id"], "name": "n1", "spec": {"text": "hi"}},
    )
    assert world.staff.request("POST", f"/objects/cron_job/{note['id']}/run").status_code == 404
    assert world.staff.request("GET", f"/objects/cron_job/{note['id']}/runs").status_code == 404
