"""Walk every endpoint of the OpenAPI document with another account's ids: always 404.

The walk is driven by the served OpenAPI document, so an endpoint added later is walked
too; a path parameter the walk does not know fails the test instead of being skipped.
"""

from __future__ import annotations

from typing import Any

from panel.apps.models import Platform
from panel.hosts.models import Apply
from panel.tasks.models import Backup, Task
from tests.conftest import Api, World

# Valid bodies, so that a 404 is not hidden behind a 422 for a malformed request.
BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("patch", "/api/v1/accounts/{account_id}"): {"name": "Taken over"},
    ("post", "/api/v1/accounts/{account_id}/memberships"): {
        "email": "owner@acme.test",
        "role": "owner",
    },
    ("patch", "/api/v1/accounts/{account_id}/memberships/{membership_id}"): {"role": "viewer"},
    ("patch", "/api/v1/users/{user_id}"): {"name": "x"},
    ("patch", "/api/v1/hosts/{host_id}"): {"enabled": False},
    ("patch", "/api/v1/sites/{site_id}"): {"enabled": False},
    ("put", "/api/v1/sites/{site_id}/certificate"): {
        "certificate": "-----BEGIN CERTIFICATE-----",
        "private_key": "-----BEGIN PRIVATE KEY-----",
    },
    ("patch", "/api/v1/mailboxes/{mailbox_id}"): {"password": "taken over!"},
    ("patch", "/api/v1/mail-aliases/{alias_id}"): {"destinations": ["thief@evil.test"]},
    ("patch", "/api/v1/lists/{list_id}"): {"owners": ["thief@evil.test"]},
    ("post", "/api/v1/lists/{list_id}/members"): {"email": "thief@evil.test"},
    ("post", "/api/v1/lists/{list_id}/members/import"): {"emails": ["thief@evil.test"]},
    ("patch", "/api/v1/database-users/{user_id}"): {"password": "taken over!"},
    ("post", "/api/v1/sites/{site_id}/restore"): {"backup_id": 1},
    ("post", "/api/v1/sites/{site_id}/clone"): {"domain": "copy.acme.test"},
    ("post", "/api/v1/sites/{site_id}/migrate"): {"host_id": 1},
    ("post", "/api/v1/databases/{database_id}/migrate"): {"host_id": 1},
    ("put", "/api/v1/sites/{site_id}/backup-schedule"): {"frequency": "daily"},
    ("post", "/api/v1/backups/{backup_id}/restore"): {},
    ("post", "/api/v1/accounts/{account_id}/migrate"): {"web_host_id": 1},
    ("patch", "/api/v1/objects/{kind}/{obj_id}"): {"spec": {"text": "taken over"}},
    ("post", "/api/v1/sites/{site_id}/app"): {
        "platform_id": 1,
        "title": "Taken over",
        "admin_email": "thief@evil.test",
    },
    ("patch", "/api/v1/platforms/{platform_id}"): {"enabled": False},
    ("patch", "/api/v1/domains/{domain_id}/dns"): {"hosted": False},
    ("post", "/api/v1/domains/{domain_id}/records"): {"type": "A", "address": "192.0.2.66"},
    ("put", "/api/v1/dns-records/{record_id}"): {"type": "A", "address": "192.0.2.66"},
    ("post", "/api/v1/domains/{domain_id}/dkim"): {},
    ("post", "/api/v1/platforms/{platform_id}/update"): {"target_id": 1},
}
# Provider-wide objects, no account's: members read them (a platform to install from) and
# never change them (403, the same for every member, so it tells nothing of any account).
PROVIDER_WIDE = {"platform_id"}


def _foreign_world(world: World) -> tuple[Api, dict[str, Any], dict[str, Any]]:
    acme, beta = world.account("acme"), world.account("beta")
    world.domain(acme, "acme.test")
    world.domain(beta, "beta.test")
    me = world.member(acme, "owner")
    them = world.member(beta, "owner")
    s = world.staff
    ids = {
        "account": beta["id"],
        "domain": s.ok("GET", "/domains", params={"account_id": beta["id"]})["items"][0]["id"],
        "site": s.ok("POST", "/sites", 201, json={"account_id": beta["id"], "domain": "beta.test"})[
            "id"
        ],
        "mailbox": s.ok(
            "POST",
            "/mailboxes",
            201,
            json={"account_id": beta["id"], "address": "a@beta.test", "password": "12345678"},
        )["id"],
        "alias": s.ok(
            "POST",
            "/mail-aliases",
            201,
            json={
                "account_id": beta["id"],
                "address": "b@beta.test",
                "destinations": ["a@beta.test"],
            },
        )["id"],
        "list": s.ok(
            "POST",
            "/lists",
            201,
            json={"account_id": beta["id"], "address": "news@beta.test", "owners": ["a@beta.test"]},
        )["id"],
        "database": s.ok(
            "POST", "/databases", 201, json={"account_id": beta["id"], "name": "beta_db"}
        )["id"],
        "dbuser": s.ok(
            "POST",
            "/database-users",
            201,
            json={
                "account_id": beta["id"],
                "name": "beta_u",
                "password": "12345678",
                "databases": ["beta_db"],
            },
        )["id"],
        "membership": s.ok("GET", f"/accounts/{beta['id']}/memberships")[0]["id"],
        "token": them.ok("POST", "/tokens", 201, json={"name": "t", "scopes": ["account:beta"]})[
            "id"
        ],
        "user": them.user_id,
        "host": s.ok("GET", "/hosts")["items"][0]["id"],
        "kind": "toy_note",
        "object": s.ok(
            "POST",
            "/objects/toy_note",
            201,
            json={"account_id": beta["id"], "name": "beta-note", "spec": {"text": "beta note"}},
        )["id"],
    }
    ids["cron_job"] = s.ok(
        "POST",
        "/objects/cron_job",
        201,
        json={
            "account_id": beta["id"],
            "site_id": ids["site"],
            "name": "beta-cron",
            "spec": {"schedule": "@daily", "command": "true"},
        },
    )["id"]
    ids["list_member"] = s.ok(
        "POST", f"/lists/{ids['list']}/members", 201, json={"email": "m@beta.test"}
    )["id"]
    ids["dns_record"] = s.ok(
        "POST", f"/domains/{ids['domain']}/records", 201,
        json={"type": "A", "name": "www", "address": "192.0.2.1"},
    )["id"]  # fmt: skip
    ids["event"] = them.ok("GET", "/audit-events")["items"][0]["id"]
    with world.db.session() as session:
        task = Task(account_id=beta["id"], kind="backup", site_id=ids["site"])
        session.add(task)
        session.commit()
        ids["task"] = task.id
        backup = Backup(  # of a deleted site: the case a member restores by its own id
            account_id=beta["id"], site_id=None, domain="beta.test", host_id=ids["host"], path="/x"
        )
        session.add(backup)
        session.commit()
        ids["backup"] = backup.id
    with world.db.session() as session:
        apply = Apply(host_id=ids["host"], generation=1)
        session.add(apply)
        session.commit()
        ids["apply"] = apply.id
        platform = Platform(name="wordpress-6.1.9", app="wordpress", version="6.1.9",
                            sha256="0" * 64, source="test")  # fmt: skip
        session.add(platform)
        session.commit()
        ids["platform"] = platform.id
    return me, beta, ids


PARAM_KIND = {
    "account_id": "account",
    "domain_id": "domain",
    "site_id": "site",
    "mailbox_id": "mailbox",
    "alias_id": "alias",
    "list_id": "list",
    "member_id": "list_member",
    "database_id": "database",
    "membership_id": "membership",
    "token_id": "token",
    "host_id": "host",
    "apply_id": "apply",
    "event_id": "event",
    "task_id": "task",
    "backup_id": "backup",
    "kind": "kind",  # a plugin-declared kind's name: the toy plugin's
    "obj_id": "object",
    "job_id": "cron_job",  # /objects/cron_job/{job_id}/run and /runs (panel.cron)
    "platform_id": "platform",
    "record_id": "dns_record",
}


def _kind(path: str, param: str) -> str:
    if param == "user_id":
        return "dbuser" if path.startswith("/api/v1/database-users") else "user"
    if param not in PARAM_KIND:
        raise AssertionError(f"the tenancy walk does not know {param} in {path}; teach it")
    return PARAM_KIND[param]


def test_every_endpoint_answers_404_for_a_foreign_id(hosted: World) -> None:
    me, _beta, ids = _foreign_world(hosted)
    spec = hosted.client.get("/api/v1/openapi.json").json()
    walked = 0
    for path, ops in spec["paths"].items():
        params = [p.strip("{}") for p in path.split("/") if p.startswith("{")]
        if params in ([], ["kind"]):  # collections: walked by the two tests below
            continue
        for method in ops:
            url = path
            for p in params:
                url = url.replace("{" + p + "}", str(ids[_kind(path, p)]))
            body = BODIES.get((method, path))
            r = me.client.request(
                method.upper(), url, json=body, headers={"Authorization": f"Bearer {me.token}"}
            )
            expected = 403 if PROVIDER_WIDE & set(params) else 404
            assert r.status_code == expected, (method, path, r.status_code, r.text)
            assert r.headers["content-type"] == "application/problem+json"
            assert "beta" not in r.text
            walked += 1
    assert walked >= 30
    # Nothing of beta changed.
    site = hosted.staff.ok("GET", f"/sites/{ids['site']}")
    assert site["enabled"] is True and site["status"] == "pending"
    assert hosted.staff.ok("GET", f"/accounts/{ids['account']}")["name"] == "Beta"


def test_lists_never_show_foreign_objects(hosted: World) -> None:
    me, beta, _ids = _foreign_world(hosted)
    spec = hosted.client.get("/api/v1/openapi.json").json()
    lists = [
        p
        for p, ops in spec["paths"].items()
        if "{" not in p and "get" in ops and p not in ("/api/v1/users/me",)
    ]
    lists += [p.replace("{kind}", "toy_note") for p in spec["paths"] if p.endswith("/{kind}")]
    assert len(lists) >= 12
    for path in lists:
        r = me.client.get(path, headers={"Authorization": f"Bearer {me.token}"})
        if r.status_code == 403:  # staff-only collections (hosts, users, applies)
            continue
        assert r.status_code == 200, (path, r.text)
        items = r.json()["items"]
        assert all(
            (i.get("account_id", 0) != beta["id"] and i.get("id") != beta["id"])
            or path in ("/api/v1/tokens", "/api/v1/platforms")
            for i in items
        ), path
        filtered = me.client.get(
            path, params={"account_id": beta["id"]}, headers={"Authorization": f"Bearer {me.token}"}
        ).json()
        if path not in ("/api/v1/tokens", "/api/v1/platforms"):  # platforms: PROVIDER_WIDE
            assert filtered["items"] == [], path


def test_creating_in_a_foreign_account_is_404(hosted: World) -> None:
    me, beta, _ids = _foreign_world(hosted)
    creates = {
        "/domains": {"name": "x.beta.test"},
        "/sites": {"domain": "x.beta.test"},
        "/mailboxes": {"address": "x@beta.test", "password": "12345678"},
        "/mail-aliases": {"address": "x@beta.test", "destinations": ["a@beta.test"]},
        "/lists": {"address": "x@beta.test", "owners": ["a@beta.test"]},
        "/databases": {"name": "beta_x"},
        "/objects/toy_note": {"name": "x", "spec": {"text": "taken over"}},
        "/database-users": {"name": "beta_x", "password": "12345678"},
    }
    for path, body in creates.items():
        r = me.post(path, json={"account_id": beta["id"], **body})
        assert r.status_code == 404, (path, r.text)


# A valid spec of every kind the installed plugins store, so each is walked; a kind added
# later fails the walk until it is taught here.
SAMPLE_SPECS: dict[str, dict[str, Any]] = {
    "toy_note": {"text": "beta note"},
    "toy_banner": {"text": "beta banner"},
    "sftp_login": {
        "ssh_keys": [
            "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKmXcjPZFHVOTWZ57j9Rt6w9uBI8ZceKzgGBjje6LpvU"
        ]
    },
    "php_settings": {"memory_limit": "256M"},
    "cron_job": {"schedule": "@daily", "command": "true"},
}


def test_every_plugin_kind_is_fenced(hosted: World) -> None:
    from provisioners.registry import installed

    me, beta, ids = _foreign_world(hosted)
    kinds = installed().stored()
    assert {k.name for k in kinds} <= set(SAMPLE_SPECS), "teach the walk the new kind's spec"
    headers = {"Authorization": f"Bearer {me.token}"}
    for kind in kinds:
        body: dict[str, Any] = {
            "account_id": beta["id"],
            "name": f"beta-{kind.name.replace('_', '-')}",
        }
        if kind.placement == "site":
            body["site_id"] = ids["site"]
        body["spec"] = SAMPLE_SPECS[kind.name]
        theirs = hosted.staff.request("POST", f"/objects/{kind.name}", json=body)
        if theirs.status_code == 409:  # one per site, and the walk's world made one
            theirs = hosted.staff.request("GET", f"/objects/{kind.name}")
            obj_id = theirs.json()["items"][0]["id"]
        else:
            assert theirs.status_code == 201, (kind.name, theirs.text)
            obj_id = theirs.json()["id"]
        path = f"/api/v1/objects/{kind.name}/{obj_id}"
        for method, payload in (("GET", None), ("PATCH", {"spec": {}}), ("DELETE", None)):
            r = me.client.request(method, path, json=payload, headers=headers)
            assert r.status_code == 404, (kind.name, method, r.text)
        listed = me.client.get(f"/api/v1/objects/{kind.name}", headers=headers).json()["items"]
        assert all(o["account_id"] != beta["id"] for o in listed), kind.name
        created = me.post(f"/objects/{kind.name}", json={**body, "name": "sneaky"})
        assert created.status_code == 404, (kind.name, created.text)
        assert hosted.staff.ok("GET", path.removeprefix("/api/v1"))["status"] == "pending"
