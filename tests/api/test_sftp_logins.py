"""SFTP logins through /api/v1/objects/sftp_login: strict input, secrets never shown,
tenancy, and the state a web host is handed (no host here)."""

from __future__ import annotations

from typing import Any

import bcrypt
import pytest
from sqlalchemy import select

from panel.audit.models import AuditEvent
from panel.hosts.models import Host
from panel.hosts.reconcile import snapshot
from panel.objects.models import PluginObject
from provisioners.sftp import SftpLogin
from tests.conftest import World

KEY = (
    "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKmXcjPZFHVOTWZ57j9Rt6w9uBI8ZceKzgGBjje6LpvU member@laptop"
)
PASSWORD = "correct horse battery"


def _site(world: World, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    site = world.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": f"{slug}.test"}
    )
    return account, site


def _body(account: dict[str, Any], site: dict[str, Any], name: str, **spec: Any) -> Any:
    return {"account_id": account["id"], "site_id": site["id"], "name": name, "spec": spec}


def _field(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["errors"][0]["field"])


@pytest.mark.parametrize(
    ("name", "spec", "field"),
    [
        ("../root", {"ssh_keys": [KEY]}, "name"),
        ("acme web", {"ssh_keys": [KEY]}, "name"),
        ("acme-web", {"ssh_keys": ["ssh-ed25519 AAAA\nroot:x:0:0"]}, "spec.ssh_keys.0"),
        ("acme-web", {"ssh_keys": ["ssh-dss AAAAB3NzaC1kc3MAAACBAP"]}, "spec.ssh_keys.0"),
        ("acme-web", {"ssh_keys": ["ssh-rsa " + KEY.split()[1]]}, "spec.ssh_keys.0"),
        ("acme-web", {"password": "short"}, "spec.password"),
        ("acme-web", {"password": "ten chars\nroot::0:0"}, "spec.password"),
        ("acme-web", {"password_hash": "x:0:0:root:/:/bin/sh"}, "spec.password_hash"),
        ("acme-web", {"ssh_keys": [KEY], "scope": "/"}, "spec.scope"),
        ("acme-web", {"ssh_keys": [KEY], "shell": "/bin/bash"}, "spec.shell"),
        ("acme-web", {}, "spec"),  # neither a password nor a key
    ],
)
def test_hostile_input_is_refused_naming_the_field(
    world: World, name: str, spec: dict[str, Any], field: str
) -> None:
    world.host(["web"])
    acme, site = _site(world, "acme")
    response = world.staff.post("/objects/sftp_login", json=_body(acme, site, name, **spec))
    assert _field(response) == field
    with world.db.session() as session:
        assert session.scalar(select(PluginObject.id)) is None  # nothing saved


def test_a_login_needs_a_site_of_its_own_account(world: World) -> None:
    world.host(["web"])
    acme, _ = _site(world, "acme")
    _, theirs = _site(world, "beta")
    no_site = {"account_id": acme["id"], "name": "acme-web", "spec": {"ssh_keys": [KEY]}}
    assert _field(world.staff.post("/objects/sftp_login", json=no_site)) == "site_id"
    foreign = _body(acme, theirs, "acme-web", ssh_keys=[KEY])
    response = world.staff.post("/objects/sftp_login", json=foreign)
    assert _field(response) == "site_id" and str(theirs["id"]) in response.text


def test_the_password_is_kept_only_as_a_hash_that_is_never_shown(world: World) -> None:
    web = world.host(["web"])
    acme, site = _site(world, "acme")
    made = world.staff.ok(
        "POST",
        "/objects/sftp_login",
        201,
        json=_body(acme, site, "acme-web", password=PASSWORD, ssh_keys=[KEY]),
    )
    assert made["spec"] == {
        "scope": "site",
        "ssh_keys": [" ".join(KEY.split()[:2])],  # the comment is not kept
        "enabled": True,
        "shell": False,
    }
    assert made["site_id"] == site["id"] and made["host_id"] is None
    shown = [
        world.staff.ok("GET", f"/objects/sftp_login/{made['id']}"),
        *world.staff.ok("GET", "/objects/sftp_login")["items"],
    ]
    assert all("password_hash" not in o["spec"] for o in shown)
    with world.db.session() as session:
        stored = session.scalars(select(PluginObject)).one().spec
        first_hash = stored["password_hash"]
        assert "password" not in stored and PASSWORD not in str(stored)
        assert bcrypt.checkpw(PASSWORD.encode(), first_hash.encode())

    # A patch of the keys keeps the password; a new password replaces the hash.
    world.staff.ok("PATCH", f"/objects/sftp_login/{made['id']}", json={"spec": {"ssh_keys": []}})
    with world.db.session() as session:
        assert session.scalars(select(PluginObject)).one().spec["password_hash"] == first_hash
    world.staff.ok(
        "PATCH",
        f"/objects/sftp_login/{made['id']}",
        json={"spec": {"password": "another long password"}},
    )
    with world.db.session() as session:
        spec = session.scalars(select(PluginObject)).one().spec
        assert bcrypt.checkpw(b"another long password", spec["password_hash"].encode())
        events = session.scalars(select(AuditEvent)).all()
        assert not any("$2b$" in str(e.changes) for e in events)  # the audit keeps no hash
        assert any(e.changes.get("spec", {}).get("secrets_changed") for e in events)
        # The web host of the site is handed the login, typed, with its site.
        state = snapshot(session, session.get_one(Host, web["id"])).state
    [item] = state.items("sftp_login", SftpLogin)
    assert (item.name, item.site_id, item.spec.scope) == ("acme-web", site["id"], "site")
    # Removing the last key with no password left would lock the login: refused.
    bare = world.staff.post("/objects/sftp_login", json=_body(acme, site, "acme-two"))
    assert _field(bare) == "spec"


def test_another_accounts_login_is_404_and_never_listed(world: World) -> None:
    world.host(["web"])
    acme, site = _site(world, "acme")
    beta, _ = _site(world, "beta")
    mine = world.staff.ok(
        "POST", "/objects/sftp_login", 201, json=_body(acme, site, "acme-web", ssh_keys=[KEY])
    )
    bob = world.member(beta)
    path = f"/objects/sftp_login/{mine['id']}"
    assert bob.get(path).status_code == 404
    assert bob.patch(path, json={"spec": {"enabled": False}}).status_code == 404
    assert bob.delete(path).status_code == 404
    assert bob.ok("GET", "/objects/sftp_login")["items"] == []
    # Nor can B attach a login to A's site from its own account.
    sneaky = _body(beta, site, "beta-web", ssh_keys=[KEY])
    assert _field(bob.post("/objects/sftp_login", json=sneaky)) == "site_id"
    alice = world.member(acme)
    assert alice.ok("GET", path)["name"] == "acme-web"


def test_deleting_a_site_takes_its_logins_with_it(world: World) -> None:
    world.host(["web"])
    acme, site = _site(world, "acme")
    made = world.staff.ok(
        "POST", "/objects/sftp_login", 201, json=_body(acme, site, "acme-web", ssh_keys=[KEY])
    )
    world.staff.ok("DELETE", f"/sites/{site['id']}", 202)
    assert world.staff.ok("GET", f"/objects/sftp_login/{made['id']}")["status"] == "deleting"


def test_only_staff_give_a_login_a_shell(world: World) -> None:
    world.host(["web"])
    acme, site = _site(world, "acme")
    alice = world.member(acme)
    body = _body(acme, site, "acme-web", ssh_keys=[KEY], shell=True)
    refused = alice.post("/objects/sftp_login", json=body)
    assert refused.status_code == 403 and "staff" in refused.json()["detail"]
    made = alice.ok("POST", "/objects/sftp_login", 201, json={**body, "spec": {"ssh_keys": [KEY]}})
    path = f"/objects/sftp_login/{made['id']}"
    assert alice.patch(path, json={"spec": {"shell": True}}).status_code == 403
    assert world.staff.ok("PATCH", path, json={"spec": {"shell": True}})["spec"]["shell"] is True
    # A member's own change of keys leaves the staff's choice alone.
    alice.ok("PATCH", path, json={"spec": {"ssh_keys": [KEY, KEY.replace("member", "other")]}})
    assert alice.ok("GET", path)["spec"]["shell"] is True
    no_key = world.staff.patch(path, json={"spec": {"ssh_keys": [], "password": PASSWORD}})
    assert _field(no_key) == "spec"  # a shell opens with a key only
