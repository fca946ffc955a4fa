"""A site's backups and tasks in the panel: backup, schedule, clone, restore and move forms
through ``panel.tasks.service``, the task page, an account's tasks; tenancy and CSRF as on
every page.  Tasks are only queued here: no host runs them."""

from __future__ import annotations

import re
from typing import Any

from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.tasks.models import Backup, BackupSchedule, Task
from tests.web.conftest import Browser, WebWorld
from tests.web.test_pages import _acme


def _site(web: WebWorld, role: str = "owner") -> tuple[dict[str, Any], dict[str, Any]]:
    acme = _acme(web, role)
    site = web.world.staff.ok("POST", "/sites", 201,
                              json={"account_id": acme["id"], "domain": "www.acme.test"})
    return acme, site


def _alice(web: WebWorld) -> Browser:
    b = web.browser()
    b.login("alice@acme.test")
    return b


def _backup(web: WebWorld, acme: dict[str, Any], site_id: int | None, domain: str,
            **extra: Any) -> int:
    store = next(h for h in web.world.staff.ok("GET", "/hosts")["items"]
                 if "backup" in h["roles"])
    with web.db.session() as s:
        row = Backup(account_id=acme["id"], site_id=site_id, domain=domain, host_id=store["id"],
                     path=f"/srv/konbit-backups/{domain}/1", **extra)
        s.add(row)
        s.commit()
        return row.id


def _tasks(web: WebWorld) -> list[Task]:
    with web.db.session() as s:
        return list(s.scalars(select(Task).order_by(Task.id)))


def test_a_member_backs_up_schedules_and_clones_a_site(web: WebWorld) -> None:
    acme, site = _site(web)
    web.world.domain(acme, "copy.test")
    b = _alice(web)
    page = f"/sites/{site['id']}/lifecycle"
    assert f'href="{page}"' in b.get(f"/accounts/{acme['id']}").text
    assert f'href="/accounts/{acme["id"]}/tasks"' in b.get(f"/accounts/{acme['id']}").text
    assert f'href="{page}"' in b.get(f"/sites/{site['id']}").text
    r = b.get(page)
    assert r.status_code == 200 and "Backups and tasks of www.acme.test" in r.text
    assert "No backup yet." in r.text and "No scheduled backups." in r.text
    assert f'action="/sites/{site["id"]}/migrate"' not in r.text  # staff only

    # No backup host yet: the service's refusal, on the page, not a crash.
    r = b.post(f"/sites/{site['id']}/backups")
    assert r.status_code == 409 and "No backup host is available" in r.text
    r = b.post(f"/sites/{site['id']}/backup-schedule",
               {"frequency": "daily", "hour": "4", "weekday": "0"})
    assert r.status_code == 409 and "No backup host is available" in r.text
    assert _tasks(web) == []

    web.world.host(["backup"])
    r = b.post(f"/sites/{site['id']}/backups")
    assert r.status_code == 303 and r.headers["location"] == page
    (task,) = _tasks(web)
    assert (task.kind, task.status, task.site_id) == ("backup", "queued", site["id"])
    r = b.get(page)
    assert f"Backup started: task {task.id}." in r.text
    assert f'href="/tasks/{task.id}"' in r.text and "queued" in r.text
    assert f"Backup started: task {task.id}." not in b.get(page).text  # shown once

    r = b.post(f"/sites/{site['id']}/backup-schedule",
               {"frequency": "weekly", "hour": "25", "weekday": "2"})
    assert r.status_code == 422 and 'id="e-hour">must be 23 or less' in r.text
    r = b.post(f"/sites/{site['id']}/backup-schedule",
               {"frequency": "weekly", "hour": "4", "weekday": "2"})
    assert r.status_code == 303
    with web.db.session() as s:
        row = s.get(BackupSchedule, site["id"])
        assert row is not None and (row.frequency, row.hour, row.weekday) == ("weekly", 4, 2)
        assert row.next_run_at.weekday() == 2 and row.next_run_at.hour == 4
    r = b.get(page)
    assert "Backups scheduled; the next one starts" in r.text
    assert "Every Wednesday at 04:00 UTC." in r.text
    assert re.search(r'<option value="weekly" selected>', r.text)
    r = b.post(f"/sites/{site['id']}/backup-schedule", {"frequency": "off"})
    assert r.status_code == 303
    with web.db.session() as s:
        assert s.get(BackupSchedule, site["id"]) is None
    assert "Scheduled backups are off." in b.get(page).text

    # A bad name: the schema's message next to the field; a name of no own domain: the
    # service's, next to it too.
    r = b.post(f"/sites/{site['id']}/clone", {"domain": "not a domain"})
    assert r.status_code == 422 and 'id="e-domain">must not contain spaces' in r.text
    assert 'value="not a domain"' in r.text
    r = b.post(f"/sites/{site['id']}/clone", {"domain": "www.other.test"})
    assert r.status_code == 422 and re.search(r'id="e-domain">&#39;www.other.test&#39; is not',
                                              r.text)
    r = b.post(f"/sites/{site['id']}/clone", {"domain": "copy.test"})
    assert r.status_code == 303
    clone = _tasks(web)[-1]
    assert (clone.kind, clone.status, clone.params["site_id"]) == ("clone", "queued", site["id"])
    new = web.world.staff.ok("GET", f"/sites/{clone.params['target_site_id']}")
    assert new["domain"] == "copy.test" and new["status"] == "pending"
    r = b.get(page)
    assert f"Clone started: task {clone.id}." in r.text and f'href="/tasks/{clone.id}"' in r.text

    with web.db.session() as s:
        events = s.scalars(select(AuditEvent).where(AuditEvent.object_type == "sites",
                                                    AuditEvent.object_id == site["id"])
                           .order_by(AuditEvent.id)).all()
        actions = [(e.action, e.changes) for e in events][1:]  # after the create
    assert actions == [
        ("backup", {"task": {"new": task.id}}),
        ("backup-schedule", {"schedule": {"new": {"frequency": "weekly", "hour": 4,
                                                  "weekday": 2}}}),
        ("backup-schedule", {"schedule": {"new": None}}),
        ("clone", {"task": {"new": clone.id}}),
    ]


def test_backups_list_and_restore_in_place_or_as_a_new_site(web: WebWorld) -> None:
    acme, site = _site(web)
    web.world.host(["backup"])
    web.world.host(["db"])
    made = _backup(web, acme, site["id"], "www.acme.test", size_bytes=2_000_000,
                   scheduled=True, databases=[{"name": "acme_wp", "engine": "mariadb",
                                               "file": "acme_wp.sql.gz", "bytes": 10}])
    b = _alice(web)
    r = b.get(f"/sites/{site['id']}/lifecycle")
    assert "1.9 MB" in r.text and "acme_wp" in r.text and "scheduled" in r.text
    assert f'href="/backups/{made}/restore#in-place"' in r.text
    r = b.get(f"/backups/{made}/restore")
    assert r.status_code == 200 and "archived on their hosts" in r.text
    assert "Yes, replace www.acme.test with this backup" in r.text

    r = b.post(f"/backups/{made}/restore", {"mode": "new-site", "domain": ""})
    assert r.status_code == 422 and 'id="e-domain">Field required' in r.text
    r = b.post(f"/backups/{made}/restore", {"mode": "new-site", "domain": "old.acme.test"})
    assert r.status_code == 303 and r.headers["location"] == f"/sites/{site['id']}/lifecycle"
    copy = _tasks(web)[-1]
    assert copy.kind == "restore" and copy.params["target_site_id"] == copy.site_id
    assert web.world.staff.ok("GET", f"/sites/{copy.site_id}")["domain"] == "old.acme.test"

    r = b.post(f"/backups/{made}/restore", {"mode": "in-place"})
    assert r.status_code == 303
    in_place = _tasks(web)[-1]
    assert in_place.kind == "restore" and in_place.site_id == site["id"]
    assert "target_site_id" not in in_place.params
    # A second one while the first is queued: refused, said on the page.
    r = b.post(f"/backups/{made}/restore", {"mode": "in-place"})
    assert r.status_code == 409 and f"Task {in_place.id} is restoring" in r.text
    r = b.get(f"/sites/{site['id']}/lifecycle")
    assert f"Restore started: task {in_place.id}." in r.text
    assert f'href="/tasks/{copy.id}"' in r.text and f'href="/tasks/{in_place.id}"' in r.text


def test_backups_of_deleted_sites_come_back_as_new_sites(web: WebWorld) -> None:
    acme = _acme(web)
    web.world.host(["backup"])
    gone = _backup(web, acme, None, "gone.acme.test", size_bytes=5 * 1024 * 1024)
    b = _alice(web)
    r = b.get(f"/accounts/{acme['id']}/tasks")
    assert r.status_code == 200 and "Backups of deleted sites" in r.text
    assert "gone.acme.test" in r.text and "5 MB" in r.text
    assert f'href="/backups/{gone}/restore#new-site"' in r.text
    r = b.get(f"/backups/{gone}/restore")
    assert "Leave empty to use its old name, gone.acme.test." in r.text
    assert 'name="mode" value="in-place"' not in r.text
    r = b.post(f"/backups/{gone}/restore", {"mode": "new-site", "domain": ""})
    assert r.status_code == 303 and r.headers["location"] == f"/accounts/{acme['id']}/tasks"
    task = _tasks(web)[-1]
    assert task.kind == "restore"
    assert web.world.staff.ok("GET", f"/sites/{task.site_id}")["domain"] == "gone.acme.test"
    r = b.get(f"/accounts/{acme['id']}/tasks")
    assert f"Restore started: task {task.id}." in r.text
    assert f'href="/sites/{task.site_id}/lifecycle">gone.acme.test' in r.text


def test_the_task_page_reloads_while_the_task_runs(web: WebWorld) -> None:
    _acme_account, site = _site(web)
    web.world.host(["backup"])
    b = _alice(web)
    b.get(f"/sites/{site['id']}/lifecycle")
    b.post(f"/sites/{site['id']}/backups")
    (task,) = _tasks(web)
    r = b.get(f"/tasks/{task.id}")
    assert r.status_code == 200 and f"Task {task.id}" in r.text
    assert 'data-refresh="3"' in r.text and 'value="0"' in r.text
    with web.db.session() as s:
        row = s.get_one(Task, task.id)
        row.status, row.progress, row.error = "failed", 40, "the backup host is full"
        row.log, row.result = "dumping acme_wp <ok>\n", {"bytes": 12}
        s.commit()
    r = b.get(f"/tasks/{task.id}")
    assert 'data-refresh' not in r.text and 'value="40"' in r.text
    assert "the backup host is full" in r.text and "dumping acme_wp &lt;ok&gt;" in r.text
    assert "&#34;bytes&#34;: 12" in r.text or '"bytes": 12' in r.text
    # A task of no account is the staff's.
    with web.db.session() as s:
        s.add(Task(account_id=None, kind="migrate-database", params={}))
        s.commit()
    staff_task = _tasks(web)[-1]
    assert b.get(f"/tasks/{staff_task.id}").status_code == 404
    web.user("ops@provider.test", staff=True)
    ops = web.browser()
    ops.login("ops@provider.test")
    assert ops.get(f"/tasks/{staff_task.id}").status_code == 200


def test_the_account_tasks_page_is_paginated_and_in_french(web: WebWorld) -> None:
    acme, site = _site(web)
    web.world.host(["backup"])
    web.world.domain(acme, "copy.test")
    _backup(web, acme, site["id"], "www.acme.test", size_bytes=2_000_000)
    b = _alice(web)
    for _ in range(3):
        b.get(f"/sites/{site['id']}/lifecycle")
        assert b.post(f"/sites/{site['id']}/backups").status_code == 303
    ids = [t.id for t in _tasks(web)]
    r = b.get(f"/accounts/{acme['id']}/tasks?tlimit=2")
    shown = [int(i) for i in re.findall(r'href="/tasks/(\d+)"', r.text)]
    assert shown == ids[::-1][:2]
    nxt = re.search(r'<a href="([^"]+)" rel="next">', r.text)
    assert nxt
    r = b.get(nxt[1].replace("&amp;", "&"))
    assert [int(i) for i in re.findall(r'href="/tasks/(\d+)"', r.text)] == [ids[0]]

    fr = {"Accept-Language": "fr"}
    r = b.get(f"/sites/{site['id']}/lifecycle", headers=fr)
    assert r.headers["content-language"] == "fr"
    assert "Sauvegardes et tâches de www.acme.test" in r.text
    assert "Sauvegarder maintenant" in r.text and "1,9\u202fMo" in r.text
    assert "en file d’attente" in r.text and "Cloner vers un autre domaine" in r.text
    r = b.get(f"/tasks/{ids[0]}", headers=fr)
    assert f"Tâche {ids[0]}" in r.text and "sauvegarde" in r.text
    r = b.get(f"/accounts/{acme['id']}/tasks", headers=fr)
    assert "Sauvegardes de sites supprimés" in r.text
    r = b.post(f"/sites/{site['id']}/clone", {"domain": "pas un domaine"}, headers=fr)
    assert r.status_code == 422 and 'id="e-domain">ne doit pas contenir d’espaces' in r.text
    r = b.get(f"/backups/{_backup(web, acme, site['id'], 'www.acme.test')}/restore", headers=fr)
    assert "Restaurer sur place" in r.text


def test_moves_are_for_staff(web: WebWorld) -> None:
    acme, site = _site(web)
    web2 = web.world.host(["web"])
    db2 = web.world.host(["db"])
    b = _alice(web)
    assert f'action="/sites/{site["id"]}/migrate"' not in b.get(
        f"/sites/{site['id']}/lifecycle").text
    assert f'action="/accounts/{acme["id"]}/migrate"' not in b.get(
        f"/accounts/{acme['id']}/tasks").text
    r = b.post(f"/sites/{site['id']}/migrate", {"host_id": str(web2["id"])})
    assert r.status_code == 403
    r = b.post(f"/accounts/{acme['id']}/migrate", {"web_host_id": str(web2["id"])})
    assert r.status_code == 403
    assert _tasks(web) == []

    web.user("ops@provider.test", staff=True)
    ops = web.browser()
    ops.login("ops@provider.test")
    r = ops.get(f"/sites/{site['id']}/lifecycle")
    assert f'action="/sites/{site["id"]}/migrate"' in r.text
    assert f'<option value="{web2["id"]}">{web2["name"]}</option>' in r.text
    # The site is still pending: the service's refusal, above the form.
    r = ops.post(f"/sites/{site['id']}/migrate", {"host_id": str(web2["id"])})
    assert r.status_code == 409 and "The site is pending" in r.text
    r = ops.post(f"/sites/{site['id']}/migrate", {"host_id": str(db2["id"])})
    assert r.status_code == 422 and "does not exist or has no" in r.text
    r = ops.get(f"/accounts/{acme['id']}/tasks")
    assert f'action="/accounts/{acme["id"]}/migrate"' in r.text
    r = ops.post(f"/accounts/{acme['id']}/migrate", {"web_host_id": "", "db_host_id": ""})
    assert r.status_code == 422 and 'id="e-web_host_id">' in r.text
    r = ops.post(f"/accounts/{acme['id']}/migrate",
                 {"web_host_id": "", "db_host_id": str(db2["id"])})
    assert r.status_code == 303
    task = _tasks(web)[-1]
    assert (task.kind, task.account_id, task.params.get("db_host_id")) == (
        "migrate-account", acme["id"], db2["id"])
    r = ops.get(f"/accounts/{acme['id']}/tasks")
    assert f"Move of the account started: task {task.id}." in r.text


def test_other_accounts_viewers_and_forms_without_csrf(web: WebWorld) -> None:
    acme, site = _site(web)
    web.world.host(["backup"])
    web.world.domain(acme, "copy.test")
    backup = _backup(web, acme, site["id"], "www.acme.test")
    b = _alice(web)
    b.get(f"/sites/{site['id']}/lifecycle")
    b.post(f"/sites/{site['id']}/backups")
    (task,) = _tasks(web)

    other = web.world.account("other")
    web.member(other, "bob@other.test")
    bob = web.browser()
    bob.login("bob@other.test")
    for path in (f"/sites/{site['id']}/lifecycle", f"/tasks/{task.id}",
                 f"/backups/{backup}/restore", f"/accounts/{acme['id']}/tasks"):
        r = bob.get(path)
        assert r.status_code == 404, path
        assert "www.acme.test" not in r.text
    posts: list[tuple[str, dict[str, str]]] = [
        (f"/sites/{site['id']}/backups", {}),
        (f"/sites/{site['id']}/backup-schedule", {"frequency": "daily", "hour": "3"}),
        (f"/sites/{site['id']}/clone", {"domain": "copy.test"}),
        (f"/sites/{site['id']}/migrate", {"host_id": "1"}),
        (f"/backups/{backup}/restore", {"mode": "in-place"}),
        (f"/accounts/{acme['id']}/migrate", {"web_host_id": "1"}),
    ]
    for path, data in posts:
        assert bob.post(path, data).status_code == 404, path

    # The account's viewer sees, and may not act.
    web.member(acme, "vera@acme.test", "viewer")
    vera = web.browser()
    vera.login("vera@acme.test")
    r = vera.get(f"/sites/{site['id']}/lifecycle")
    assert r.status_code == 200 and f'href="/tasks/{task.id}"' in r.text
    assert "Back up now" not in r.text and "Restore in place" not in r.text
    assert vera.get(f"/tasks/{task.id}").status_code == 200
    r = vera.get(f"/backups/{backup}/restore")
    assert r.status_code == 200 and 'name="mode"' not in r.text
    for path, data in posts:
        assert vera.post(path, data).status_code == 403, path

    # A form without its session's token: refused, nothing started.
    for path, data in posts:
        assert b.post(path, data, csrf=False).status_code == 403, path
    assert [t.id for t in _tasks(web)] == [task.id]
    with web.db.session() as s:
        assert s.get(BackupSchedule, site["id"]) is None
