"""A site's PHP settings through ``/api/v1/objects/php_settings``: hostile values refused
with a 422 naming the field, one per site, tenancy, and the host's state carrying them."""

from __future__ import annotations

from typing import Any

from panel.hosts.models import Host
from panel.hosts.reconcile import snapshot
from provisioners.web.php_settings import PhpSettings
from tests.conftest import World


def _php_site(world: World, slug: str) -> tuple[dict[str, Any], dict[str, Any]]:
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    site = world.staff.ok(
        "POST",
        "/sites",
        201,
        json={"account_id": account["id"], "domain": f"www.{slug}.test", "php": "8.2"},
    )
    return account, site


def _body(account: dict[str, Any], site: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "account_id": account["id"],
        "name": f"site-{site['id']}",
        "site_id": site["id"],
        "spec": spec,
    }


def test_hostile_values_are_refused_naming_the_field(hosted: World) -> None:
    acme, site = _php_site(hosted, "acme")
    m = hosted.member(acme)
    cases = [
        ({"memory_limit": "256M\nphp_admin_value[open_basedir] = /"}, "spec.memory_limit"),
        ({"memory_limit": "9999M"}, "spec.memory_limit"),
        ({"memory_limit": "-1"}, "spec.memory_limit"),
        ({"upload_max_filesize": "1M;x"}, "spec.upload_max_filesize"),
        ({"upload_max_filesize": "200M", "post_max_size": "100M"}, "spec.post_max_size"),
        ({"max_execution_time": 3600}, "spec.max_execution_time"),
        ({"max_input_vars": 5}, "spec.max_input_vars"),
        ({"display_errors": "loud"}, "spec.display_errors"),
        ({"date_timezone": "Europe/Paris]"}, "spec.date_timezone"),
        ({"disable_functions": ""}, "spec.disable_functions"),
    ]
    for spec, field in cases:
        r = m.post("/objects/php_settings", json=_body(acme, site, **spec))
        assert r.status_code == 422, (spec, r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert [e["field"] for e in r.json()["errors"]] == [field], r.text
    r = m.post("/objects/php_settings", json={**_body(acme, site), "site_id": None})
    assert r.status_code == 422 and "site_id" in r.text
    assert hosted.staff.ok("GET", "/objects/php_settings")["items"] == []


def test_settings_are_stored_normalised_one_per_site_and_read_into_the_hosts_state(
    hosted: World,
) -> None:
    acme, site = _php_site(hosted, "acme")
    m = hosted.member(acme)
    made = m.ok(
        "POST",
        "/objects/php_settings",
        201,
        json=_body(
            acme, site, memory_limit="1g", display_errors=True, date_timezone="Europe/Paris"
        ),
    )
    assert made["status"] == "pending" and made["site_id"] == site["id"]
    assert made["host_id"] is None  # it lives on its site's host
    spec = {k: v for k, v in made["spec"].items() if v is not None}
    assert spec == {
        "memory_limit": "1024M",
        "display_errors": True,
        "date_timezone": "Europe/Paris",
    }
    again = m.post("/objects/php_settings", json={**_body(acme, site), "name": "other"})
    assert again.status_code == 409 and "already has its PHP settings" in again.text
    with hosted.db.session() as session:
        state = snapshot(session, session.get_one(Host, site["host_id"])).state
    (item,) = state.items("php_settings", PhpSettings)
    assert (item.site_id, item.spec.memory_limit) == (site["id"], "1024M")
    changed = m.ok(
        "PATCH",
        f"/objects/php_settings/{made['id']}",
        json={"spec": {"memory_limit": "256M", "display_errors": None}},  # null: PHP's default
    )
    assert changed["spec"]["memory_limit"] == "256M" and changed["spec"]["display_errors"] is None
    r = m.patch(f"/objects/php_settings/{made['id']}", json={"spec": {"memory_limit": "0M"}})
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "spec.memory_limit"


def test_another_accounts_site_or_settings_answer_404_or_422(hosted: World) -> None:
    acme, site = _php_site(hosted, "acme")
    evil, evil_site = _php_site(hosted, "evil")
    made = hosted.staff.ok(
        "POST", "/objects/php_settings", 201, json=_body(acme, site, memory_limit="64M")
    )
    e = hosted.member(evil)
    assert e.get(f"/objects/php_settings/{made['id']}").status_code == 404
    assert (
        e.patch(
            f"/objects/php_settings/{made['id']}", json={"spec": {"memory_limit": "1G"}}
        ).status_code
        == 404
    )
    assert e.delete(f"/objects/php_settings/{made['id']}").status_code == 404
    assert e.ok("GET", "/objects/php_settings")["items"] == []
    # Posting for acme's account is acme's business; naming acme's site from evil's is not.
    assert e.post("/objects/php_settings", json=_body(acme, site)).status_code == 404
    r = e.post("/objects/php_settings", json={**_body(evil, evil_site), "site_id": site["id"]})
    assert r.status_code == 422 and [x["field"] for x in r.json()["errors"]] == ["site_id"]
