"""Mailboxes, aliases, lists, databases and their users."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from panel.databases.models import DatabaseUser
from panel.databases.secrets import mysql_native_hash
from panel.mail.models import Mailbox
from tests.conftest import Api, World


def _acme(world: World) -> tuple[dict[str, Any], Api]:
    acme = world.account("acme")
    world.domain(acme, "acme.org")
    return acme, world.member(acme)


def test_mailbox_password_is_write_only_and_hashed_for_dovecot(hosted: World) -> None:
    acme, m = _acme(hosted)
    box = m.ok(
        "POST",
        "/mailboxes",
        201,
        json={
            "account_id": acme["id"],
            "address": "Alice@ACME.org",
            "password": "s3cret pass!",
            "quota_mb": 500,
        },
    )
    assert box["address"] == "alice@acme.org"
    assert "password" not in box and "password_hash" not in box
    with hosted.db.session() as s:
        stored = s.scalar(select(Mailbox.password_hash))
    assert stored is not None and stored.startswith("{ARGON2ID}$argon2id$")
    assert "s3cret" not in stored
    events = hosted.staff.ok("GET", "/audit-events", params={"object_type": "mailboxes"})
    assert "s3cret" not in str(events)
    m.ok("PATCH", f"/mailboxes/{box['id']}", json={"password": "another pass"})
    with hosted.db.session() as s:
        assert s.scalar(select(Mailbox.password_hash)) != stored


def test_one_address_is_one_thing(hosted: World) -> None:
    acme, m = _acme(hosted)
    m.ok(
        "POST",
        "/mailboxes",
        201,
        json={"account_id": acme["id"], "address": "info@acme.org", "password": "12345678"},
    )
    for path, extra in (
        ("/mail-aliases", {"destinations": ["x@example.com"]}),
        ("/lists", {"owners": ["x@example.com"]}),
    ):
        r = m.post(path, json={"account_id": acme["id"], "address": "info@acme.org", **extra})
        assert r.status_code == 409, r.text


def test_alias_destinations_and_catch_all(hosted: World) -> None:
    acme, m = _acme(hosted)
    alias = m.ok(
        "POST",
        "/mail-aliases",
        201,
        json={
            "account_id": acme["id"],
            "address": "team@acme.org",
            "destinations": ["a@acme.org", "B+news@Example.COM", "a@acme.org"],
        },
    )
    assert alias["destinations"] == ["a@acme.org", "b+news@example.com"]
    catch = m.ok(
        "POST",
        "/mail-aliases",
        201,
        json={"account_id": acme["id"], "address": "@acme.org", "destinations": ["a@acme.org"]},
    )
    assert catch["address"] == "@acme.org"
    # All mail of one domain lives on one mail host.
    assert catch["host_id"] == alias["host_id"]


def test_mail_storage_quota(hosted: World) -> None:
    acme = hosted.account("acme", mail_mb=1000)
    hosted.domain(acme, "acme.org")
    hosted.staff.ok(
        "POST",
        "/mailboxes",
        201,
        json={
            "account_id": acme["id"],
            "address": "a@acme.org",
            "password": "12345678",
            "quota_mb": 800,
        },
    )
    r = hosted.staff.post(
        "/mailboxes",
        json={
            "account_id": acme["id"],
            "address": "b@acme.org",
            "password": "12345678",
            "quota_mb": 300,
        },
    )
    assert r.status_code == 409
    assert r.json()["errors"][0]["field"] == "quotas.mail_mb"


def test_list_with_owners_and_policy(hosted: World) -> None:
    acme, m = _acme(hosted)
    lst = m.ok(
        "POST",
        "/lists",
        201,
        json={
            "account_id": acme["id"],
            "address": "news@acme.org",
            "owners": ["boss@acme.org"],
            "policy": "moderate",
        },
    )
    assert lst["policy"] == "moderate" and lst["status"] == "pending"
    upd = m.ok("PATCH", f"/lists/{lst['id']}", json={"policy": "open"})
    assert upd["policy"] == "open"
    r = m.post(
        "/lists",
        json={
            "account_id": acme["id"],
            "address": "news-request@acme.org",
            "owners": ["boss@acme.org"],
        },
    )
    assert r.status_code == 422


def test_database_names_are_namespaced_by_account(hosted: World) -> None:
    acme, m = _acme(hosted)
    db = m.ok("POST", "/databases", 201, json={"account_id": acme["id"], "name": "acme_shop"})
    assert db["engine"] == "mariadb"
    for bad in ("shop", "beta_shop", "acme_", "acme_a_b", "acme_%", "acme_sh%p", "acme__x"):
        r = m.post("/databases", json={"account_id": acme["id"], "name": bad})
        assert r.status_code == 422, bad
        assert r.json()["errors"][0]["field"] == "name"
    pg = m.ok(
        "POST",
        "/databases",
        201,
        json={"account_id": acme["id"], "name": "acme_shop", "engine": "postgresql"},
    )
    assert pg["engine"] == "postgresql"


def test_hyphenated_slug_prefix_cannot_be_entered_by_a_shorter_slug(hosted: World) -> None:
    coop, acme = hosted.account("acme-coop"), hosted.account("acme")
    hosted.staff.ok(
        "POST", "/databases", 201, json={"account_id": coop["id"], "name": "acme_coop_shop"}
    )
    r = hosted.staff.post("/databases", json={"account_id": acme["id"], "name": "acme_coop_shop"})
    assert r.status_code == 422


def test_database_user_grants_and_verifiers(hosted: World) -> None:
    acme, m = _acme(hosted)
    m.ok("POST", "/databases", 201, json={"account_id": acme["id"], "name": "acme_shop"})
    m.ok("POST", "/databases", 201, json={"account_id": acme["id"], "name": "acme_blog"})
    m.ok(
        "POST",
        "/databases",
        201,
        json={"account_id": acme["id"], "name": "acme_pg", "engine": "postgresql"},
    )
    user = m.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": acme["id"],
            "name": "acme_web",
            "password": "db password 1",
            "databases": ["acme_shop"],
        },
    )
    assert user["databases"] == ["acme_shop"] and user["engine"] == "mariadb"
    with hosted.db.session() as s:
        stored = s.scalar(select(DatabaseUser.password_hash))
    assert stored == mysql_native_hash("db password 1")
    upd = m.ok(
        "PATCH", f"/database-users/{user['id']}", json={"databases": ["acme_blog", "acme_shop"]}
    )
    assert upd["databases"] == ["acme_blog", "acme_shop"]
    r = m.patch(f"/database-users/{user['id']}", json={"databases": ["acme_pg"]})
    assert r.status_code == 422
    pg_user = m.ok(
        "POST",
        "/database-users",
        201,
        json={
            "account_id": acme["id"],
            "name": "acme_pgu",
            "password": "db password 2",
            "databases": ["acme_pg"],
        },
    )
    with hosted.db.session() as s:
        verifier = s.scalar(
            select(DatabaseUser.password_hash).where(DatabaseUser.id == pg_user["id"])
        )
    assert verifier is not None and verifier.startswith("SCRAM-SHA-256$4096:")


def test_database_quota(hosted: World) -> None:
    acme = hosted.account("acme", databases=1)
    hosted.staff.ok("POST", "/databases", 201, json={"account_id": acme["id"], "name": "acme_a"})
    r = hosted.staff.post("/databases", json={"account_id": acme["id"], "name": "acme_b"})
    assert r.status_code == 409 and "databases" in r.json()["detail"]
