"""Database users through the API: grants and passwords change only through validated
writes, and every change makes the user pending on its host again."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from panel.databases.models import DatabaseUser
from panel.databases.secrets import mysql_native_hash
from panel.hosts.models import Host
from tests.conftest import World


def _setup(world: World, slug: str = "acme") -> tuple[dict[str, Any], dict[str, Any]]:
    account = world.account(slug)
    world.staff.ok(
        "POST", "/databases", 201, json={"account_id": account["id"], "name": f"{slug}_shop"}
    )
    user = world.staff.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": account["id"],
            "name": f"{slug}_web",
            "password": "first pass 1",
            "databases": [f"{slug}_shop"],
        },
    )
    return account, user


def _generation(world: World) -> int:
    with world.db.session() as s:
        return max(h.desired_generation for h in s.scalars(select(Host)))


def test_revoke_and_password_change_make_the_user_pending_again(hosted: World) -> None:
    _, user = _setup(hosted)
    before = _generation(hosted)
    upd = hosted.staff.ok("PATCH", f"/database-users/{user['id']}", json={"databases": []})
    assert upd["databases"] == [] and upd["status"] == "pending"
    assert _generation(hosted) == before + 1
    upd = hosted.staff.ok(
        "PATCH", f"/database-users/{user['id']}", json={"password": "second pass 2"}
    )
    assert upd["status"] == "pending" and "password" not in upd
    with hosted.db.session() as s:
        stored = s.scalar(select(DatabaseUser.password_hash))
    assert stored == mysql_native_hash("second pass 2")
    events = hosted.staff.ok("GET", "/audit-events", params={"object_type": "database_users"})
    assert "second pass" not in str(events)
    # The same grants again change nothing: no new generation.
    now = _generation(hosted)
    hosted.staff.ok("PATCH", f"/database-users/{user['id']}", json={"databases": []})
    assert _generation(hosted) == now


def test_grants_only_on_the_accounts_own_valid_database_names(hosted: World) -> None:
    _, user = _setup(hosted)
    _setup(hosted, "beta")
    for bad in ("beta_shop", "acme_%", "acme_sh_p", "acme_shop`; DROP DATABASE x; --", "x" * 70):
        r = hosted.staff.patch(f"/database-users/{user['id']}", json={"databases": [bad]})
        assert r.status_code == 422, bad
        assert r.headers["content-type"].startswith("application/problem+json")
        assert r.json()["errors"][0]["field"].startswith("databases")
    assert hosted.staff.ok("GET", f"/database-users/{user['id']}")["databases"] == ["acme_shop"]


def test_postgresql_reserved_role_prefix_is_refused(hosted: World) -> None:
    pg = hosted.account("pg")
    r = hosted.staff.post(
        "/database-users",
        json={
            "account_id": pg["id"],
            "name": "pg_app",
            "password": "some pass 1",
            "engine": "postgresql",
        },
    )
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "name"
    assert "pg_" in r.json()["errors"][0]["reason"]
    hosted.staff.ok(
        "POST",
        "/database-users",
        201,
        json={"account_id": pg["id"], "name": "pg_app", "password": "some pass 1"},
    )
