"""Accounts, memberships, tokens, problem details and the audit trail."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import select, update

from panel.accounts.models import ApiToken
from panel.audit.models import AuditEvent
from panel.audit.service import purge_expired
from panel.core.auth import hash_token
from tests.conftest import World


def test_unauthenticated_and_bad_tokens_are_401_problems(world: World) -> None:
    r = world.client.get("/api/v1/sites")
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/problem+json"
    assert r.headers["www-authenticate"] == "Bearer"
    r = world.client.get("/api/v1/sites", headers={"Authorization": "Bearer kb_nope"})
    assert r.status_code == 401


def test_token_is_shown_once_and_stored_hashed(world: World) -> None:
    created = world.staff.ok("POST", "/tokens", 201, json={"name": "ci", "scopes": ["admin"]})
    secret = created["token"]
    assert secret.startswith("kb_")
    listed = world.staff.ok("GET", "/tokens")["items"]
    assert all("token" not in t for t in listed)
    with world.db.session() as s:
        row = s.scalar(select(ApiToken).where(ApiToken.id == created["id"]))
        assert row is not None and row.token_hash == hash_token(secret)
    # The new token works, and records its last use.
    r = world.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    assert world.staff.ok("GET", f"/tokens/{created['id']}")["last_used_at"] is not None


def test_revoked_and_expired_tokens_stop_working(world: World) -> None:
    created = world.staff.ok("POST", "/tokens", 201, json={"name": "x", "scopes": ["admin"]})
    auth = {"Authorization": f"Bearer {created['token']}"}
    assert world.client.get("/api/v1/users/me", headers=auth).status_code == 200
    world.staff.ok("DELETE", f"/tokens/{created['id']}")
    assert world.client.get("/api/v1/users/me", headers=auth).status_code == 401
    soon = world.staff.ok(
        "POST",
        "/tokens",
        201,
        json={
            "name": "y",
            "scopes": ["admin"],
            "expires_at": (dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)).isoformat(),
        },
    )
    with world.db.session() as s:
        s.execute(
            update(ApiToken)
            .where(ApiToken.id == soon["id"])
            .values(expires_at=dt.datetime.now(dt.UTC) - dt.timedelta(seconds=1))
        )
        s.commit()
    r = world.client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {soon['token']}"})
    assert r.status_code == 401 and "expired" in r.json()["detail"]


def test_scopes_never_widen(world: World) -> None:
    acme = world.account("acme")
    member = world.member(acme, "owner")
    r = member.post("/tokens", json={"name": "up", "scopes": ["admin"]})
    assert r.status_code == 422
    r = member.post("/tokens", json={"name": "other", "scopes": ["account:beta"]})
    assert r.status_code == 422
    ok = member.ok("POST", "/tokens", 201, json={"name": "same", "scopes": ["account:acme"]})
    assert ok["scopes"] == ["account:acme"]
    read = world.token_for(f"owner@{acme['slug']}.test", ["read"])
    assert read.post("/tokens", json={"name": "r", "scopes": ["read"]}).status_code == 403
    assert read.ok("GET", f"/accounts/{acme['id']}")["slug"] == "acme"
    r = read.patch(f"/accounts/{acme['id']}", json={"name": "New"})
    assert r.status_code == 403


def test_billing_token_sees_no_objects(world: World) -> None:
    acme = world.account("acme")
    billing = world.token_for("billing@provider.test", ["billing"])
    assert billing.ok("GET", "/accounts")["items"] == []
    assert billing.get(f"/accounts/{acme['id']}").status_code == 404


def test_members_see_only_their_accounts(world: World) -> None:
    acme, beta = world.account("acme"), world.account("beta")
    m = world.member(acme)
    assert [a["slug"] for a in m.ok("GET", "/accounts")["items"]] == ["acme"]
    assert m.get(f"/accounts/{beta['id']}").status_code == 404
    assert (
        m.post("/accounts", json={"slug": "mine", "name": "M", "email": "a@b.org"}).status_code
        == 403
    )


def test_account_quotas_and_status_are_staff_only(world: World) -> None:
    acme = world.account("acme")
    owner = world.member(acme, "owner")
    assert (
        owner.ok("PATCH", f"/accounts/{acme['id']}", json={"name": "ACME Coop"})["name"]
        == "ACME Coop"
    )
    assert owner.patch(f"/accounts/{acme['id']}", json={"quotas": {"sites": 99}}).status_code == 403
    done = world.staff.ok("PATCH", f"/accounts/{acme['id']}", json={"quotas": {"sites": 99}})
    assert done["quotas"]["sites"] == 99 and done["quotas"]["mailboxes"] == 50
    r = world.staff.patch(f"/accounts/{acme['id']}", json={"quotas": {"cpu": 1}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "quotas"


def test_memberships_keep_one_owner(world: World) -> None:
    acme = world.account("acme")
    owner = world.member(acme, "owner")
    manager = world.member(acme, "manager")
    ms = owner.ok("GET", f"/accounts/{acme['id']}/memberships")
    mine = next(m for m in ms if m["role"] == "owner")
    r = owner.patch(f"/accounts/{acme['id']}/memberships/{mine['id']}", json={"role": "viewer"})
    assert r.status_code == 409
    assert (
        manager.post(
            f"/accounts/{acme['id']}/memberships", json={"email": "x@y.org", "role": "owner"}
        ).status_code
        == 403
    )
    r = owner.post(
        f"/accounts/{acme['id']}/memberships", json={"email": "nobody@y.org", "role": "viewer"}
    )
    assert r.status_code == 422


def test_close_account_only_when_empty(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    assert hosted.staff.delete(f"/accounts/{acme['id']}").status_code == 409
    d = hosted.staff.ok("GET", "/domains")["items"][0]
    hosted.staff.ok("DELETE", f"/domains/{d['id']}", 204)
    assert hosted.staff.ok("DELETE", f"/accounts/{acme['id']}")["status"] == "closed"


def test_every_write_is_audited_with_actor_token_and_address(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    site = m.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": "acme.org"})
    m.ok("PATCH", f"/sites/{site['id']}", json={"php": "8.2"})
    m.ok(
        "POST",
        "/database-users",
        201,
        json={"account_id": acme["id"], "name": "acme_u", "password": "hunter2hunter2"},
    )
    events = m.ok("GET", "/audit-events", params={"account_id": acme["id"]})["items"]
    actions = [(e["action"], e["object_type"]) for e in events]
    assert ("create", "sites") in actions and ("update", "sites") in actions
    upd = next(e for e in events if e["action"] == "update")
    assert upd["changes"]["php"] == {"old": None, "new": "8.2"}
    assert upd["actor_email"] == f"manager@{acme['slug']}.test"
    assert upd["token_id"] is not None and upd["client_addr"]
    assert "hunter2" not in str(events)
    # Another account's member sees none of it.
    beta = hosted.account("beta")
    seen = hosted.member(beta).ok("GET", "/audit-events")["items"]
    assert seen and {e["account_id"] for e in seen} == {beta["id"]}


def test_audit_retention(world: World) -> None:
    world.account("acme")
    with world.db.session() as s:
        s.execute(update(AuditEvent).values(time=dt.datetime.now(dt.UTC) - dt.timedelta(days=400)))
        s.commit()
    assert world.staff.ok("GET", "/audit-events")["items"] == []
    with world.db.session() as s:
        assert purge_expired(s, 365) == 1
        s.commit()
        assert s.scalar(select(AuditEvent.id)) is None


def test_openapi_is_served(world: World) -> None:
    spec = world.client.get("/api/v1/openapi.json").json()
    for path in (
        "/api/v1/sites",
        "/api/v1/mailboxes",
        "/api/v1/database-users",
        "/api/v1/audit-events",
        "/api/v1/accounts/{account_id}/memberships",
    ):
        assert path in spec["paths"]
