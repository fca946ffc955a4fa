"""DKIM through the API: a mail domain's first mailbox or alias queues its key task (and
only that one), keys are listed and published in the zone in every state, the mail host
signs with its active key alone, a rotation is one task at a time, the worker's round
makes what is missing and drops what is past its time; another account's domain is 404."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pytest
from sqlalchemy import select, update

from panel.core.db import utcnow
from panel.dns import dkim
from panel.dns.dkim import DkimKey, DkimState
from panel.dns.zones import zones_for
from panel.hosts.models import Host
from panel.hosts.state import snapshot
from panel.tasks.models import Task
from provisioners.api import DkimKeyView
from tests.conftest import World

PUBLIC = "MIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA" + "x" * 348  # base64 of its size


@pytest.fixture
def mail(world: World) -> dict[str, Any]:
    """alpha.test and alpha.org of account alpha, a mail host, a DNS host."""
    host = world.host(["mail"])
    world.host(["dns"], settings={"dns_ns_name": "ns1.provider.test"})
    account = world.account("alpha")
    domain = world.domain(account, "alpha.test")
    other = world.domain(account, "alpha.org")
    member = world.member(account)
    return {"host": host, "account": account, "domain": domain, "other": other,
            "member": member}  # fmt: skip


def _mailbox(mail: dict[str, Any], address: str) -> None:
    body = {"account_id": mail["account"]["id"], "address": address, "password": "12345678"}
    mail["member"].ok("POST", "/mailboxes", 201, json=body)


def _key_tasks(world: World) -> list[dict[str, Any]]:
    return world.staff.ok("GET", "/tasks", params={"kind": "dkim-key"})["items"]  # type: ignore[no-any-return]


def _finish_tasks(world: World, status: str = "succeeded", age: dt.timedelta | None = None) -> None:
    """What the worker would have done with the queued tasks (here: end them)."""
    values: dict[str, Any] = {"status": status}
    if age is not None:
        values["created_at"] = utcnow() - age
    with world.db.session() as session:
        session.execute(update(Task).where(Task.status == "queued").values(**values))
        session.commit()


def _key(world: World, mail: dict[str, Any], selector: str, state: str, **extra: Any) -> int:
    with world.db.session() as session:
        row = DkimKey(
            account_id=mail["account"]["id"],
            domain_id=mail["domain"]["id"],
            host_id=extra.pop("host_id", mail["host"]["id"]),
            selector=selector,
            public_key=PUBLIC,
            state=state,
            **extra,
        )
        session.add(row)
        session.commit()
        return row.id


def test_the_first_mailbox_or_alias_of_a_domain_queues_its_key_task(
    world: World, mail: dict[str, Any]
) -> None:
    _mailbox(mail, "info@alpha.test")
    (task,) = _key_tasks(world)
    assert (task["params"], task["account_id"]) == (
        {"domain_id": mail["domain"]["id"]}, mail["account"]["id"],
    )  # fmt: skip
    # The member sees it among the account's tasks.
    assert mail["member"].ok("GET", f"/tasks/{task['id']}")["kind"] == "dkim-key"
    _mailbox(mail, "sales@alpha.test")  # the same domain: no second task
    body = {"account_id": mail["account"]["id"], "address": "team@alpha.test",
            "destinations": ["info@alpha.test"]}  # fmt: skip
    mail["member"].ok("POST", "/mail-aliases", 201, json=body)
    assert len(_key_tasks(world)) == 1
    body = {**body, "address": "@alpha.org"}  # another domain's first mail: an alias
    mail["member"].ok("POST", "/mail-aliases", 201, json=body)
    tasks = _key_tasks(world)
    assert [t["params"]["domain_id"] for t in tasks] == [mail["other"]["id"], mail["domain"]["id"]]


def test_keys_are_in_the_zone_in_every_state_and_the_host_signs_with_the_active_one(
    world: World, mail: dict[str, Any]
) -> None:
    _mailbox(mail, "info@alpha.test")
    assert mail["member"].ok("GET", f"/domains/{mail['domain']['id']}/dkim")["items"] == []
    soon = utcnow() + dkim.RETIRE_AFTER
    _key(world, mail, "k20261201", DkimState.retired, retire_after=soon)
    _key(world, mail, "k20261208", DkimState.active, activated_at=utcnow())
    _key(world, mail, "k20261208b", DkimState.published)
    got = mail["member"].ok("GET", f"/domains/{mail['domain']['id']}/dkim")["items"]
    assert [(k["selector"], k["state"], k["name"]) for k in got] == [
        ("k20261208b", "published", "k20261208b._domainkey.alpha.test"),
        ("k20261208", "active", "k20261208._domainkey.alpha.test"),
        ("k20261201", "retired", "k20261201._domainkey.alpha.test"),
    ]
    assert got[2]["retire_after"] is not None and got[1]["activated_at"] is not None
    text = f"v=DKIM1; k=rsa; p={PUBLIC}"
    assert got[0]["data"] == f'"{text[:255]}" "{text[255:]}"'
    records = mail["member"].ok("GET", f"/domains/{mail['domain']['id']}/records")["items"]
    dkim_records = {(r["name"], r["type"], r["source"]) for r in records if r["source"] == "dkim"}
    assert dkim_records == {
        (f"{s}._domainkey", "TXT", "dkim") for s in ("k20261201", "k20261208", "k20261208b")
    }
    with world.db.session() as session:
        (zone,) = [z for z in zones_for(session) if z.name == "alpha.test"]
        assert {r.name for r in zone.records if r.type == "TXT"} >= {"k20261208._domainkey"}
        host = session.get_one(Host, mail["host"]["id"])
        assert snapshot(session, host).state.dkim_keys == (DkimKeyView("alpha.test", "k20261208"),)
        dns = session.scalars(select(Host).where(Host.name == "h2")).one()
        assert snapshot(session, dns).state.dkim_keys == ()


def test_a_rotation_is_one_task_at_a_time_on_a_domain_with_mail(
    world: World, mail: dict[str, Any]
) -> None:
    member, domain_id = mail["member"], mail["domain"]["id"]
    r = member.post(f"/domains/{domain_id}/dkim")
    assert r.status_code == 409 and "has no mail yet" in r.text
    _mailbox(mail, "info@alpha.test")
    r = member.post(f"/domains/{domain_id}/dkim")  # the first mailbox's task is under way
    assert r.status_code == 409 and "is making a DKIM key" in r.text
    _finish_tasks(world)
    task = member.ok("POST", f"/domains/{domain_id}/dkim", 202)
    assert (task["kind"], task["status"], task["params"]) == (
        "dkim-key", "queued", {"domain_id": domain_id, "rotate": True},
    )  # fmt: skip
    assert member.post(f"/domains/{domain_id}/dkim").status_code == 409
    events = member.ok("GET", "/audit-events")["items"]
    assert any(e["action"] == "dkim-key" for e in events)
    viewer = world.member(mail["account"], "viewer")
    assert viewer.post(f"/domains/{domain_id}/dkim").status_code == 403
    assert viewer.ok("GET", f"/domains/{domain_id}/dkim")["items"] == []


def test_another_accounts_domain_has_no_keys_to_see_or_rotate(
    world: World, mail: dict[str, Any]
) -> None:
    _mailbox(mail, "info@alpha.test")
    _key(world, mail, "k20261208", DkimState.active)
    beta = world.account("beta")
    stranger = world.member(beta)
    for method in ("GET", "POST"):
        r = stranger.request(method, f"/domains/{mail['domain']['id']}/dkim")
        assert r.status_code == 404, r.text
        assert "k20261208" not in r.text


def test_the_round_makes_missing_keys_and_drops_those_past_their_time(
    world: World, mail: dict[str, Any]
) -> None:
    _mailbox(mail, "info@alpha.test")
    _finish_tasks(world, "failed", age=dt.timedelta(minutes=10))
    with world.db.session() as session:
        assert dkim.due(session) == []  # its task failed a moment ago: not again yet
    _finish_tasks(world, "failed")
    with world.db.session() as session:
        session.execute(update(Task).values(created_at=utcnow() - dt.timedelta(hours=2)))
        (started,) = dkim.due(session)
        session.commit()
        assert session.get_one(Task, started).params == {"domain_id": mail["domain"]["id"]}
        assert dkim.due(session) == []  # under way
    _finish_tasks(world)
    # A key on the domain's mail host: nothing to make.  Its mail moved to another host
    # (the key stays where it was made): a key is made there.
    _key(world, mail, "k20261208", DkimState.active)
    with world.db.session() as session:
        session.execute(update(Task).values(created_at=utcnow() - dt.timedelta(hours=2)))
        session.commit()
        assert dkim.due(session) == []
    elsewhere = world.host(["mail"])
    _key(world, mail, "k20261101", DkimState.active, host_id=elsewhere["id"])
    with world.db.session() as session:
        session.execute(update(DkimKey).where(DkimKey.selector == "k20261208")
                        .values(host_id=elsewhere["id"]))  # fmt: skip
        (moved,) = dkim.due(session)
        session.commit()
    _finish_tasks(world)
    # Retired keys: dropped once past retire_after, one task a domain, one at a time.
    past = _key(world, mail, "k20261001", DkimState.retired,
                retire_after=utcnow() - dt.timedelta(minutes=1))  # fmt: skip
    _key(world, mail, "k20261002", DkimState.retired, retire_after=utcnow() + dt.timedelta(days=1))
    with world.db.session() as session:
        session.execute(update(Task).values(created_at=utcnow() - dt.timedelta(hours=2)))
        session.execute(update(DkimKey).where(DkimKey.selector == "k20261208")
                        .values(host_id=mail["host"]["id"]))  # fmt: skip
        (drop,) = dkim.due(session)
        session.commit()
        task = session.get_one(Task, drop)
        assert (task.kind, task.params) == (
            "dkim-drop", {"domain_id": mail["domain"]["id"], "key_ids": [past]},
        )  # fmt: skip
        assert dkim.due(session) == []
    assert moved != drop
