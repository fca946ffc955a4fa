"""Lifecycle tasks through the API (no hosts): who may start what, what a member sees,
scheduled backups turning into tasks."""

from __future__ import annotations

import datetime as dt
from typing import Any

from panel.core.db import utcnow
from panel.tasks.models import Backup, Task
from panel.tasks.service import next_run, run_due_schedules
from tests.conftest import World


def _site(world: World, slug: str) -> tuple[dict[str, object], dict[str, object]]:
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    site = world.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": f"{slug}.test"}
    )
    return account, site


def test_backup_needs_a_backup_host_then_queues_a_task_the_member_sees(world: World) -> None:
    world.host(["web"])
    account, site = _site(world, "acme")
    member = world.member(account)
    r = member.post(f"/sites/{site['id']}/backups")
    assert r.status_code == 409 and "backup host" in r.json()["detail"]
    world.host(["backup"])
    task = member.ok("POST", f"/sites/{site['id']}/backups", 202, json={})
    assert (task["kind"], task["status"], task["progress"]) == ("backup", "queued", 0)
    assert member.ok("GET", f"/tasks/{task['id']}")["site_id"] == site["id"]
    assert [t["id"] for t in member.ok("GET", "/tasks", params={"kind": "backup"})["items"]] == [
        task["id"]
    ]
    assert member.ok("GET", f"/sites/{site['id']}/backups")["items"] == []
    r = member.post(f"/sites/{site['id']}/backups", json={"databases": ["acme_nope"]})
    assert r.status_code == 422
    viewer = world.member(account, "viewer")
    assert viewer.post(f"/sites/{site['id']}/backups").status_code == 403
    beta, _ = _site(world, "beta")
    other = world.member(beta)
    assert other.get(f"/tasks/{task['id']}").status_code == 404
    assert other.ok("GET", "/tasks")["items"] == []


def test_migrate_is_for_staff_and_checks_the_target(world: World) -> None:
    world.host(["web"])
    db_host = world.host(["db"])
    account, site = _site(world, "acme")
    member = world.member(account)
    assert member.post(f"/sites/{site['id']}/migrate", json={"host_id": 1}).status_code == 403
    r = world.staff.post(f"/sites/{site['id']}/migrate", json={"host_id": db_host["id"]})
    assert r.status_code == 422
    web2 = world.host(["web"])
    r = world.staff.post(f"/sites/{site['id']}/migrate", json={"host_id": web2["id"]})
    assert r.status_code == 409 and "pending" in r.json()["detail"]  # not on its host yet


def test_clone_makes_the_site_databases_and_users_at_once(world: World) -> None:
    world.host(["web"])
    world.host(["db"])
    account, site = _site(world, "acme")
    world.domain(account, "copy.test")
    member = world.member(account)
    member.ok("POST", "/databases", 201, json={"account_id": account["id"], "name": "acme_wp"})
    member.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": account["id"],
            "name": "acme_u",
            "password": "12345678",
            "databases": ["acme_wp"],
        },
    )
    task = member.ok("POST", f"/sites/{site['id']}/clone", 202, json={"domain": "copy.test"})
    # Only active databases are copied: this one is still pending.
    assert task["params"]["database_names"] == {}
    new = member.ok("GET", f"/sites/{task['params']['target_site_id']}")
    assert new["domain"] == "copy.test" and new["status"] == "pending"
    r = member.post(f"/sites/{site['id']}/clone", json={"domain": "copy.test"})
    assert r.status_code == 409


def test_schedules_turn_into_backup_tasks_when_due(world: World) -> None:
    world.host(["web"])
    world.host(["backup"])
    account, site = _site(world, "acme")
    member = world.member(account)
    assert member.get(f"/sites/{site['id']}/backup-schedule").status_code == 404
    got = member.ok(
        "PUT", f"/sites/{site['id']}/backup-schedule", json={"frequency": "weekly", "hour": 4}
    )
    at = dt.datetime.fromisoformat(got["next_run_at"])
    assert at.weekday() == 0 and at.hour == 4 and at > utcnow()
    with world.db.session() as session:
        assert run_due_schedules(session, at - dt.timedelta(seconds=1)) == []
        started = run_due_schedules(session, at)
        session.commit()
    assert len(started) == 1
    task = member.ok("GET", f"/tasks/{started[0]}")
    assert task["kind"] == "backup" and task["params"]["scheduled"] is True
    again = member.ok("GET", f"/sites/{site['id']}/backup-schedule")
    assert dt.datetime.fromisoformat(again["next_run_at"]) == at + dt.timedelta(days=7)
    assert again["last_task_id"] == started[0]
    member.ok("DELETE", f"/sites/{site['id']}/backup-schedule", 204)
    assert member.get(f"/sites/{site['id']}/backup-schedule").status_code == 404


def test_next_run() -> None:
    now = dt.datetime(2026, 3, 4, 5, 6, tzinfo=dt.UTC)  # a Wednesday
    assert next_run(now, "daily", 3, 0) == dt.datetime(2026, 3, 5, 3, tzinfo=dt.UTC)
    assert next_run(now, "daily", 7, 0) == dt.datetime(2026, 3, 4, 7, tzinfo=dt.UTC)
    assert next_run(now, "weekly", 3, 2) == dt.datetime(2026, 3, 11, 3, tzinfo=dt.UTC)
    assert next_run(now, "weekly", 3, 4) == dt.datetime(2026, 3, 6, 3, tzinfo=dt.UTC)


def _backup_of_a_deleted_site(world: World, account: dict[str, Any], dumps: list[str]) -> int:
    """A backup row as the worker leaves it once its site is gone (``site_id`` null)."""
    store = world.host(["backup"])
    with world.db.session() as session:
        row = Backup(
            account_id=account["id"],
            site_id=None,
            domain=f"{account['slug']}.test",
            host_id=store["id"],
            path="/var/lib/konbit/backups/x",
            size_bytes=10,
            files_bytes=5,
            databases=[
                {"name": n, "engine": "mariadb", "file": f"db-{n}.mariadb.sql.gz", "bytes": 1}
                for n in dumps
            ],
        )
        session.add(row)
        session.commit()
        return row.id


def test_a_deleted_sites_backup_comes_back_as_a_new_site(world: World) -> None:
    world.host(["web"])
    world.host(["db"])
    account = world.account("acme")
    world.domain(account, "acme.test")
    world.domain(account, "again.test")
    member = world.member(account)
    member.ok("POST", "/databases", 201, json={"account_id": account["id"], "name": "acme_kept"})
    backup_id = _backup_of_a_deleted_site(world, account, ["acme_kept", "acme_gone"])
    listed = member.ok("GET", "/backups", params={"deleted": "true"})["items"]
    assert [(b["id"], b["site_id"], b["domain"]) for b in listed] == [
        (backup_id, None, "acme.test")
    ]
    assert member.ok("GET", "/backups", params={"deleted": "false"})["items"] == []
    # Another account sees nothing and touches nothing; a viewer may not restore.
    other = world.member(world.account("beta"))
    assert other.ok("GET", "/backups")["items"] == []
    assert other.post(f"/backups/{backup_id}/restore", json={}).status_code == 404
    assert world.member(account, "viewer").post(f"/backups/{backup_id}/restore").status_code == 403
    r = member.post(f"/backups/{backup_id}/restore", json={"domain": "not owned.test"})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "domain"
    task = member.ok("POST", f"/backups/{backup_id}/restore", 202, json={})
    assert task["kind"] == "restore"
    p = task["params"]
    # The kept database is restored in place (archived first); the gone one is made again.
    assert p["database_names"] == {"acme_kept": "acme_kept", "acme_gone": "acme_gone"}
    assert p["replace"] == ["acme_kept"]
    site = member.ok("GET", f"/sites/{p['target_site_id']}")
    assert site["domain"] == "acme.test" and task["site_id"] == site["id"]
    names = {d["name"] for d in member.ok("GET", "/databases")["items"]}
    assert names == {"acme_kept", "acme_gone"}
    # Under another name too; the databases' names are taken now, so they are numbered.
    task = member.ok("POST", f"/backups/{backup_id}/restore", 202, json={"domain": "again.test"})
    assert task["params"]["database_names"] == {
        "acme_kept": "acme_kept",
        "acme_gone": "acme_gone",
    }


def test_whole_account_migration_is_for_staff(world: World) -> None:
    world.host(["web"])
    db_host = world.host(["db"])
    web2 = world.host(["web"])
    account, site = _site(world, "acme")
    member = world.member(account)
    body = {"web_host_id": web2["id"]}
    assert member.post(f"/accounts/{account['id']}/migrate", json=body).status_code == 403
    assert world.staff.post("/accounts/999999/migrate", json=body).status_code == 404
    r = world.staff.post(f"/accounts/{account['id']}/migrate", json={})
    assert r.status_code == 422
    r = world.staff.post(f"/accounts/{account['id']}/migrate", json={"web_host_id": db_host["id"]})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "web_host_id"
    task = world.staff.ok(
        "POST",
        f"/accounts/{account['id']}/migrate",
        202,
        json={"web_host_id": web2["id"], "db_host_id": db_host["id"]},
    )
    assert task["kind"] == "migrate-account" and task["account_id"] == account["id"]
    assert member.ok("GET", f"/tasks/{task['id']}")["status"] == "queued"
    r = world.staff.post(f"/accounts/{account['id']}/migrate", json=body)
    assert r.status_code == 409
    # A restore of one of its sites waits for the move too.
    backup_id = _backup_of_a_deleted_site(world, account, [])
    with world.db.session() as session:
        session.get_one(Backup, backup_id).site_id = site["id"]
        session.commit()
    r = member.post(f"/sites/{site['id']}/restore", json={"backup_id": backup_id})
    assert r.status_code == 409 and f"Task {task['id']} is restoring" in r.json()["detail"]
    other = world.member(world.account("beta"))
    assert other.get(f"/tasks/{task['id']}").status_code == 404


def test_a_task_of_no_account_is_the_staffs_alone(world: World) -> None:
    with world.db.session() as session:
        task = Task(account_id=None, kind="clean-up", params={})
        session.add(task)
        session.commit()
        task_id = task.id
    assert world.staff.ok("GET", f"/tasks/{task_id}")["kind"] == "clean-up"
    member = world.member(world.account("acme"))
    assert member.get(f"/tasks/{task_id}").status_code == 404
    assert member.ok("GET", "/tasks")["items"] == []
