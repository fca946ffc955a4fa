"""List rosters and the list settings a member may change: strict input, host generations."""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import Api, World
from tests.security.test_hostile_inputs import CONFIG, SHELL


def _list(world: World, **extra: Any) -> tuple[dict[str, Any], dict[str, Any], Api]:
    acme = world.account("acme")
    world.domain(acme, "acme.org")
    m = world.member(acme)
    body = {"account_id": acme["id"], "address": "news@acme.org", "owners": ["boss@acme.org"]}
    return acme, m.ok("POST", "/lists", 201, json={**body, **extra}), m


def _generation(world: World, host_id: int) -> int:
    return int(world.staff.ok("GET", f"/hosts/{host_id}")["desired_generation"])


def _set_active(world: World, list_id: int) -> None:
    from panel.lists.models import MailingList

    with world.db.session() as s:
        s.get_one(MailingList, list_id).status = "active"
        s.commit()


def test_roster_changes_mark_the_list_pending_and_bump_its_host(hosted: World) -> None:
    _, lst, m = _list(hosted)
    _set_active(hosted, lst["id"])
    gen = _generation(hosted, lst["host_id"])
    member = m.ok("POST", f"/lists/{lst['id']}/members", 201, json={"email": "Ann@Example.COM"})
    assert member["email"] == "ann@example.com" and member["role"] == "member"
    assert m.ok("GET", f"/lists/{lst['id']}")["status"] == "pending"
    assert _generation(hosted, lst["host_id"]) == gen + 1
    r = m.post(f"/lists/{lst['id']}/members", json={"email": "ann@example.com"})
    assert r.status_code == 409
    # The same address may also moderate.
    m.ok(
        "POST",
        f"/lists/{lst['id']}/members",
        201,
        json={"email": "ann@example.com", "role": "moderator"},
    )
    out = m.ok(
        "POST",
        f"/lists/{lst['id']}/members/import",
        json={"emails": ["b@example.com", "ANN@example.com", "c+tag@example.com", "b@example.com"]},
    )
    assert out == {"added": 2, "already": 1}
    gen = _generation(hosted, lst["host_id"])
    again = m.ok("POST", f"/lists/{lst['id']}/members/import", json={"emails": ["b@example.com"]})
    assert again == {"added": 0, "already": 1}
    assert _generation(hosted, lst["host_id"]) == gen  # nothing changed, nothing to do
    page = m.ok("GET", f"/lists/{lst['id']}/members", params={"limit": 2})
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = m.ok("GET", f"/lists/{lst['id']}/members", params={"cursor": page["next_cursor"]})
    assert len(page["items"] + rest["items"]) == 4
    found = m.ok("GET", f"/lists/{lst['id']}/members", params={"q": "c+tag"})["items"]
    assert [f["email"] for f in found] == ["c+tag@example.com"]
    m.ok("DELETE", f"/lists/{lst['id']}/members/{found[0]['id']}", 204)
    assert m.get(f"/lists/{lst['id']}/members/{found[0]['id']}").status_code in (404, 405)
    assert m.delete(f"/lists/{lst['id']}/members/{found[0]['id']}").status_code == 404
    assert _generation(hosted, lst["host_id"]) == gen + 1
    events = hosted.staff.ok("GET", "/audit-events", params={"object_type": "mailing_lists"})
    assert any("removed" in str(e["changes"]) for e in events["items"])


def test_a_member_id_of_another_list_is_404(hosted: World) -> None:
    acme, lst, m = _list(hosted)
    other = m.ok(
        "POST",
        "/lists",
        201,
        json={"account_id": acme["id"], "address": "talk@acme.org", "owners": ["boss@acme.org"]},
    )
    member = m.ok("POST", f"/lists/{other['id']}/members", 201, json={"email": "x@example.com"})
    assert m.delete(f"/lists/{lst['id']}/members/{member['id']}").status_code == 404
    assert m.ok("GET", f"/lists/{other['id']}/members")["items"][0]["id"] == member["id"]


def test_owners_stay_in_one_place_and_viewers_only_read(hosted: World) -> None:
    acme, lst, m = _list(hosted)
    r = m.post(f"/lists/{lst['id']}/members", json={"email": "boss@acme.org", "role": "owner"})
    assert r.status_code == 409
    m.ok(
        "POST",
        f"/lists/{lst['id']}/members",
        201,
        json={"email": "deputy@acme.org", "role": "owner"},
    )
    viewer = hosted.member(acme, "viewer")
    assert viewer.ok("GET", f"/lists/{lst['id']}/members")["items"]
    r = viewer.post(f"/lists/{lst['id']}/members", json={"email": "v@example.com"})
    assert r.status_code == 403
    r = viewer.post(f"/lists/{lst['id']}/members/import", json={"emails": ["v@example.com"]})
    assert r.status_code == 403


def test_a_deleting_list_takes_no_new_members(hosted: World) -> None:
    _, lst, m = _list(hosted)
    m.ok("DELETE", f"/lists/{lst['id']}", 202)
    r = m.post(f"/lists/{lst['id']}/members", json={"email": "late@example.com"})
    assert r.status_code == 409


def test_settings_are_strict_and_merge(hosted: World) -> None:
    _, lst, m = _list(hosted, settings={"subject_prefix": "[news] ", "max_message_size": 200})
    assert lst["settings"] == {"subject_prefix": "[news] ", "max_message_size": 200}
    gen = _generation(hosted, lst["host_id"])
    upd = m.ok(
        "PATCH",
        f"/lists/{lst['id']}",
        json={"settings": {"display_name": "ACME news", "reply_to": "list"}},
    )
    assert upd["settings"] == {
        "subject_prefix": "[news] ",
        "max_message_size": 200,
        "display_name": "ACME news",
        "reply_to": "list",
    }
    assert _generation(hosted, lst["host_id"]) == gen + 1
    same = m.ok("PATCH", f"/lists/{lst['id']}", json={"settings": {"reply_to": "list"}})
    assert same["settings"] == upd["settings"]
    assert _generation(hosted, lst["host_id"]) == gen + 1
    for bad in (
        {"posting_pipeline": "virgin"},  # not a member's setting
        {"moderator_password": "x"},
        {"display_name": ""},
        {"display_name": "x" * 101},
        {"description": "x" * 501},
        {"subject_prefix": "x" * 41},
        {"archive_policy": "everyone"},
        {"max_message_size": -1},
        {"max_message_size": 10**6},
        {"max_message_size": "10; rm -rf /"},
        {"reply_to": "explicit"},
        {"advertised": "maybe"},
    ):
        r = m.patch(f"/lists/{lst['id']}", json={"settings": bad})
        assert r.status_code == 422, (bad, r.text)
        assert r.json()["errors"][0]["field"].startswith("settings"), r.text
    assert m.ok("GET", f"/lists/{lst['id']}")["settings"] == upd["settings"]


HEADER_SMUGGLING = [v for v in CONFIG if not v.isprintable()] + [
    "x\r\nBcc: victim@example.com",
    "x\nSubject: free money",
    "\u202eevil",
    "Evil <postmaster@example.com>",
    '"quoted"',
    "a\\b",
]


@pytest.mark.parametrize("value", HEADER_SMUGGLING)
def test_no_header_can_be_smuggled_through_a_setting(hosted: World, value: str) -> None:
    _, lst, m = _list(hosted)
    for key in ("display_name", "description", "subject_prefix"):
        r = m.patch(f"/lists/{lst['id']}", json={"settings": {key: value}})
        assert r.status_code == 422, (key, value, r.text)
    assert m.ok("GET", f"/lists/{lst['id']}")["settings"] == {}


def test_hostile_member_addresses_are_refused(hosted: World) -> None:
    _, lst, m = _list(hosted)
    for local in SHELL + CONFIG:
        email = f"{local}@example.com"
        r = m.post(f"/lists/{lst['id']}/members", json={"email": email})
        assert r.status_code == 422, (email, r.text)
        r = m.post(f"/lists/{lst['id']}/members/import", json={"emails": ["ok@example.com", email]})
        assert r.status_code == 422, (email, r.text)
        assert r.json()["errors"][0]["field"].startswith("emails")
    for bad in ({"email": "a@example.com", "role": "admin"}, {"email": "a@example.com", "x": 1}):
        assert m.post(f"/lists/{lst['id']}/members", json=bad).status_code == 422
    assert m.post(f"/lists/{lst['id']}/members/import", json={"emails": []}).status_code == 422
    assert m.ok("GET", f"/lists/{lst['id']}/members")["items"] == []
