"""Update status: the inventory of every site's application (on a platform or installed by
hand), "N sites behind", its CSV; platforms' automatic updates in their maintenance window."""

from __future__ import annotations

import csv
import datetime as dt
import io
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from panel.apps.models import AppStatus, Platform, SiteApp, SiteInventory
from panel.apps.service import run_due_updates, window_end
from panel.core.db import utcnow
from panel.tasks.models import Task
from tests.api.test_apps import _archive, _field, _php_site
from tests.conftest import World


def _wp(world: World, tmp: Path, name: str, version: str) -> dict[str, Any]:
    (tmp / name).mkdir()
    php = f"<?php\n$wp_version = '{version}';\n".encode()
    source = _archive(tmp / name, php)
    return world.staff.ok("POST", "/platforms", 201, json={"name": name, "source": source})  # type: ignore[no-any-return]


def _on(world: World, site: dict[str, Any], platform: dict[str, Any], **extra: Any) -> None:
    with world.db.session() as session:
        session.add(
            SiteApp(
                site_id=site["id"], account_id=site["account_id"], platform_id=platform["id"],
                app=platform["app"], title="T", admin_user="admin", admin_email="a@b.test",
                status=AppStatus.active, version=platform["version"], **extra,
            )
        )  # fmt: skip
        session.commit()


def _by_hand(world: World, site: dict[str, Any], app: str | None, version: str | None) -> None:
    with world.db.session() as session:
        session.add(
            SiteInventory(
                site_id=site["id"], account_id=site["account_id"], app=app, version=version,
                scanned_at=utcnow(),
            )
        )  # fmt: skip
        session.commit()


@pytest.fixture
def inventory_world(hosted: World, tmp_path: Path) -> dict[str, Any]:
    """alpha on WordPress 6.1.9, beta on 6.2 (the newest), delta by hand at 5.8.3, eps a
    Joomla by hand (no platform to compare), zeta scanned with nothing found."""
    old, new = _wp(hosted, tmp_path, "wp-619", "6.1.9"), _wp(hosted, tmp_path, "wp-62", "6.2")
    sites = {slug: _php_site(hosted, slug)[2] for slug in ("alpha", "beta", "delta", "eps", "zeta")}
    _on(hosted, sites["alpha"], old)
    _on(hosted, sites["beta"], new)
    _by_hand(hosted, sites["delta"], "wordpress", "5.8.3")
    _by_hand(hosted, sites["eps"], "joomla", "4.0.0")
    _by_hand(hosted, sites["zeta"], None, None)
    return {"old": old, "new": new, **sites}


def test_inventory_lists_every_application_beside_the_newest_platform(
    hosted: World, inventory_world: dict[str, Any]
) -> None:
    w = inventory_world
    items = hosted.staff.ok("GET", "/apps/inventory")["items"]
    got = {e["domain"]: (e["app"], e["version"], e["platform"], e["behind"]) for e in items}
    assert got == {
        "alpha.test": ("wordpress", "6.1.9", "wp-619", True),
        "beta.test": ("wordpress", "6.2", "wp-62", False),
        "delta.test": ("wordpress", "5.8.3", None, True),
        "eps.test": ("joomla", "4.0.0", None, None),
    }
    assert [e["site_id"] for e in items] == sorted(e["site_id"] for e in items)
    assert {e["newest_version"] for e in items if e["app"] == "wordpress"} == {"6.2"}

    def domains(query: str) -> list[str]:
        return [e["domain"] for e in hosted.staff.ok("GET", f"/apps/inventory?{query}")["items"]]

    assert domains("behind=true") == ["alpha.test", "delta.test"]
    assert domains("behind=false") == ["beta.test"]
    assert domains("app=joomla") == ["eps.test"]
    assert domains(f"account_id={w['delta']['account_id']}") == ["delta.test"]
    # Pages of one, the behind filter applied across them.
    seen, cursor = [], ""
    while True:
        page = hosted.staff.ok("GET", f"/apps/inventory?behind=true&limit=1{cursor}")
        seen += [e["domain"] for e in page["items"]]
        if not page["next_cursor"]:
            break
        cursor = f"&cursor={page['next_cursor']}"
    assert seen == ["alpha.test", "delta.test"]
    assert _field(hosted.staff.get("/apps/inventory?cursor=nope")) == "cursor"
    assert _field(hosted.staff.get("/apps/inventory?app=../x")) == "app"

    text = hosted.staff.get("/apps/inventory", headers={"Accept": "text/csv"}).text
    rows = list(csv.DictReader(io.StringIO(text)))
    assert [r["domain"] for r in rows] == ["alpha.test", "beta.test", "delta.test", "eps.test"]
    assert rows[2] | {"site_id": "", "scanned_at": ""} == {
        "site_id": "", "domain": "delta.test", "account": "delta", "app": "wordpress",
        "version": "5.8.3", "platform": "", "newest_version": "6.2", "behind": "True",
        "scanned_at": "",
    }  # fmt: skip

    status = {s["app"]: s for s in hosted.staff.ok("GET", "/apps/status")["items"]}
    assert status == {
        "wordpress": {
            "app": "wordpress", "newest_platform": "wp-62", "newest_version": "6.2",
            "sites": 3, "on_platforms": 2, "by_hand": 1, "behind": 2,
        },
        "joomla": {
            "app": "joomla", "newest_platform": None, "newest_version": None,
            "sites": 1, "on_platforms": 0, "by_hand": 1, "behind": 0,
        },
    }  # fmt: skip


def test_members_see_no_inventory_nor_scan(hosted: World, inventory_world: dict[str, Any]) -> None:
    account = {"id": inventory_world["alpha"]["account_id"], "slug": "alpha"}
    member = hosted.member(account, email="second@alpha.test")
    assert member.get("/apps/inventory").status_code == 403
    assert member.get("/apps/inventory", headers={"Accept": "text/csv"}).status_code == 403
    assert member.post("/apps/scan").status_code == 403
    assert member.get("/apps/status").status_code == 403


def test_a_scan_is_one_task_at_a_time(hosted: World) -> None:
    first = hosted.staff.ok("POST", "/apps/scan", 202)
    assert first["kind"] == "app-scan" and first["status"] == "queued"
    assert hosted.staff.ok("POST", "/apps/scan", 202)["id"] == first["id"]


def test_a_maintenance_window_is_set_by_staff_only_and_checked(
    hosted: World, tmp_path: Path
) -> None:
    p = _wp(hosted, tmp_path, "wp-619", "6.1.9")
    assert (p["auto_update"], p["window_weekday"], p["window_hour"], p["window_hours"]) == (
        False, None, 3, 2,
    )  # fmt: skip
    url = f"/platforms/{p['id']}"
    body = {"auto_update": True, "window_weekday": 6, "window_hour": 1}
    member = hosted.member(hosted.account("alpha"))
    assert member.patch(url, json=body).status_code == 403
    got = hosted.staff.ok("PATCH", url, json=body)
    assert (got["auto_update"], got["window_weekday"], got["window_hour"]) == (True, 6, 1)
    assert got["enabled"] is True and got["window_hours"] == 2  # left out: kept
    got = hosted.staff.ok("PATCH", url, json={"window_weekday": None})
    assert got["window_weekday"] is None and got["window_hour"] == 1
    for bad, field in (
        ({"window_hour": 24}, "window_hour"),
        ({"window_hours": 0}, "window_hours"),
        ({"window_weekday": 7}, "window_weekday"),
        ({"enabled": None}, "enabled"),
        ({"auto_update": "sometimes"}, "auto_update"),
        ({"version": "9"}, "version"),
    ):
        assert _field(hosted.staff.patch(url, json=bad)) == field, bad
    events = hosted.staff.ok("GET", "/audit-events?object_type=platform")["items"]
    assert any(e["changes"].get("auto_update") == {"old": False, "new": True} for e in events)


def _platform_row(world: World, platform_id: int, **values: Any) -> None:
    with world.db.session() as session:
        row = session.get_one(Platform, platform_id)
        for key, value in values.items():
            setattr(row, key, value)
        session.commit()


def test_window_end() -> None:
    p = Platform(window_weekday=None, window_hour=23, window_hours=2)
    at = dt.datetime(2026, 12, 8, 0, 30, tzinfo=dt.UTC)  # a Tuesday, past midnight
    assert window_end(p, at) == dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)
    assert window_end(p, at.replace(hour=1)) is None
    p.window_weekday = 0  # Monday: the window started on Monday the 7th at 23:00
    assert window_end(p, at) == dt.datetime(2026, 12, 8, 1, 0, tzinfo=dt.UTC)
    p.window_weekday = 1
    assert window_end(p, at) is None
    assert window_end(p, dt.datetime(2026, 12, 8, 23, 5, tzinfo=dt.UTC)) is not None


def test_automatic_updates_start_once_per_window_and_skip_refused_sites(
    hosted: World, tmp_path: Path
) -> None:
    old, new = _wp(hosted, tmp_path, "wp-619", "6.1.9"), _wp(hosted, tmp_path, "wp-62", "6.2")
    alpha, beta = (_php_site(hosted, slug)[2] for slug in ("alpha", "beta"))
    _on(hosted, alpha, old)
    _on(hosted, beta, old, refused_platform_id=new["id"])  # rolled back from 6.2 once
    at = dt.datetime(2026, 12, 7, 3, 30, tzinfo=dt.UTC)
    with hosted.db.session() as session:
        assert run_due_updates(session, at) == []  # automatic updates are off
    _platform_row(hosted, old["id"], auto_update=True, window_hour=3, window_hours=2)
    with hosted.db.session() as session:
        assert run_due_updates(session, at.replace(hour=6)) == []  # outside the window
        started = run_due_updates(session, at)
        session.commit()
    assert len(started) == 1
    with hosted.db.session() as session:
        task = session.get_one(Task, started[0])
        assert task.params == {
            "from": old["id"], "to": new["id"], "site_ids": [alpha["id"]], "batch": 10,
            "until": "2026-12-07T05:00:00+00:00",
        }  # fmt: skip
        assert task.user_id is None
        # Later in the same window: nothing new, under way or not.
        assert run_due_updates(session, at + dt.timedelta(minutes=20)) == []
        task.status = "failed"
        session.commit()
        assert run_due_updates(session, at + dt.timedelta(minutes=40)) == []
    # The newest platform updates to nothing; a newer one, retired, is not a target.
    _platform_row(hosted, new["id"], auto_update=True)
    _platform_row(hosted, new["id"], enabled=False)
    with hosted.db.session() as session:
        assert run_due_updates(session, at + dt.timedelta(days=1)) == []
        assert session.scalars(select(Task.id)).all() == started
