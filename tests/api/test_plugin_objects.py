"""Objects of plugin-declared kinds (the toy plugin's), through /api/v1/objects/{kind}.

Placement, quota, validation, state reading and settling, with no host: the reconcile's
outcome is recorded as the worker would record it.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from panel.hosts.models import Host
from panel.hosts.reconcile import record, snapshot
from panel.objects.models import PluginObject
from provisioners.engine import Outcome
from tests.conftest import World


def _generation(world: World, host: dict[str, Any]) -> int:
    return int(world.staff.ok("GET", f"/hosts/{host['id']}")["desired_generation"])


def _applied(world: World, host_id: int) -> None:
    """Record an applied reconcile of the host's current state, as the worker does."""
    with world.db.session() as session:
        snap = snapshot(session, session.get_one(Host, host_id))
        from panel.hosts.models import Apply

        apply = Apply(host_id=host_id, generation=snap.generation)
        session.add(apply)
        session.flush()
        record(session, snap, apply.id, Outcome("applied", None, []), False, dt.timedelta(1))
        session.commit()


def test_a_note_is_placed_on_the_least_loaded_toy_host_and_read_into_its_state(
    world: World,
) -> None:
    acme = world.account("acme")
    t1, t2 = world.host(["toy"]), world.host(["toy"])
    world.host(["web"])
    made = [
        world.staff.ok(
            "POST",
            "/objects/toy_note",
            201,
            json={"account_id": acme["id"], "name": f"n{i}", "spec": {"text": f"note {i}"}},
        )
        for i in range(3)
    ]
    assert [m["host_id"] for m in made] == [t1["id"], t2["id"], t1["id"]]
    assert made[0]["spec"] == {"text": "note 0", "mode": "public"}  # the model's defaults
    with world.db.session() as session:
        state = snapshot(session, session.get_one(Host, t1["id"])).state
    from konbit_toy import ToyNote

    notes = state.items("toy_note", ToyNote)
    assert [(n.name, n.spec.text, n.account.slug) for n in notes] == [
        ("n0", "note 0", "acme"),
        ("n2", "note 2", "acme"),
    ]


def test_names_specs_and_hosts_are_checked_at_the_boundary(world: World) -> None:
    acme = world.account("acme")
    web = world.host(["web"])
    world.host(["toy"])
    base = {"account_id": acme["id"], "name": "n1", "spec": {"text": "fine"}}
    cases = [
        ({**base, "name": "../etc"}, "name"),
        ({**base, "spec": {"text": "a\nb"}}, "spec.text"),
        ({**base, "spec": {"text": "ok", "mode": "secret"}}, "spec.mode"),
        ({**base, "spec": {"text": "ok", "shell": "sh"}}, "spec.shell"),
        ({**base, "host_id": web["id"]}, "host_id"),
    ]
    for body, field in cases:
        r = world.staff.request("POST", "/objects/toy_note", json=body)
        assert r.status_code == 422, (body, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert field in [e["field"] for e in r.json()["errors"]], (field, r.text)
    assert world.staff.request("POST", "/objects/nginx", json=base).status_code == 404
    assert world.staff.request("GET", "/objects/site").status_code == 404  # a panel domain
    world.staff.ok("POST", "/objects/toy_note", 201, json=base)
    assert world.staff.request("POST", "/objects/toy_note", json=base).status_code == 409


def test_the_kinds_quota_is_the_accounts(world: World) -> None:
    acme = world.account("acme", toy_note=1)
    world.host(["toy"])
    body = {"account_id": acme["id"], "name": "n1", "spec": {"text": "one"}}
    world.staff.ok("POST", "/objects/toy_note", 201, json=body)
    r = world.staff.request("POST", "/objects/toy_note", json={**body, "name": "n2"})
    assert r.status_code == 409 and "quota" in r.text


def test_a_kind_served_by_every_host_of_its_role_settles_when_the_last_applies(
    world: World,
) -> None:
    acme = world.account("acme")
    t1, t2 = world.host(["toy"]), world.host(["toy"])
    before = (_generation(world, t1), _generation(world, t2))
    r = world.staff.request(
        "POST",
        "/objects/toy_banner",
        json={"account_id": acme["id"], "name": "b1", "host_id": t1["id"], "spec": {"text": "x"}},
    )
    assert r.status_code == 409  # no host to choose: every toy host serves it
    banner = world.staff.ok(
        "POST",
        "/objects/toy_banner",
        201,
        json={"account_id": acme["id"], "name": "b1", "spec": {"text": "hello all"}},
    )
    assert banner["host_id"] is None
    assert (_generation(world, t1), _generation(world, t2)) == (before[0] + 1, before[1] + 1)
    for t in (t1, t2):
        with world.db.session() as session:
            state = snapshot(session, session.get_one(Host, t["id"])).state
        assert [b.name for b in state.objects["toy_banner"]] == ["b1"]

    _applied(world, t1["id"])
    assert world.staff.ok("GET", f"/objects/toy_banner/{banner['id']}")["status"] == "pending"
    _applied(world, t2["id"])
    assert world.staff.ok("GET", f"/objects/toy_banner/{banner['id']}")["status"] == "active"

    world.staff.ok("DELETE", f"/objects/toy_banner/{banner['id']}", 202)
    _applied(world, t2["id"])
    with world.db.session() as session:
        assert session.get(PluginObject, banner["id"]) is not None  # t1 still serves it
    _applied(world, t1["id"])
    with world.db.session() as session:
        assert session.get(PluginObject, banner["id"]) is None
