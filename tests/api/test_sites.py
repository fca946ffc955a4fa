"""Sites: placement, ownership of names, generations, ETag, idempotency, pagination."""

from __future__ import annotations

from sqlalchemy import select

from panel.hosts.models import Host
from tests.conftest import World


def _generation(world: World, host_id: int) -> int:
    with world.db.session() as s:
        return s.scalar(select(Host.desired_generation).where(Host.id == host_id)) or 0


def test_create_site_is_pending_on_a_web_host_and_bumps_it(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    web = hosted.staff.ok("GET", "/hosts")["items"][0]
    before = _generation(hosted, web["id"])
    site = m.ok(
        "POST",
        "/sites",
        201,
        json={
            "account_id": acme["id"],
            "domain": "WWW.Acme.org.",
            "aliases": ["acme.org"],
            "php": "8.2",
        },
    )
    assert site["domain"] == "www.acme.org"
    assert site["aliases"] == ["acme.org"]
    assert site["status"] == "pending"
    assert site["host_id"] == web["id"]
    assert site["document_root"] == "www/www.acme.org"
    assert _generation(hosted, web["id"]) == before + 1


def test_sites_are_placed_on_the_least_loaded_web_host(hosted: World) -> None:
    second = hosted.host(["web"])
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    hosts = [
        hosted.staff.ok(
            "POST", "/sites", 201, json={"account_id": acme["id"], "domain": f"s{i}.acme.org"}
        )["host_id"]
        for i in range(4)
    ]
    assert hosts.count(second["id"]) == 2


def test_a_name_under_another_accounts_domain_is_refused(hosted: World) -> None:
    acme, evil = hosted.account("acme"), hosted.account("evil")
    hosted.domain(acme, "acme.org")
    hosted.domain(evil, "evil.org")
    e = hosted.member(evil)
    for name in ("acme.org", "shop.acme.org", "a.b.acme.org"):
        r = e.post("/sites", json={"account_id": evil["id"], "domain": name})
        assert r.status_code == 422, r.text
        assert r.headers["content-type"] == "application/problem+json"
        assert r.json()["errors"][0]["field"] == "domain"
    r = e.post(
        "/sites", json={"account_id": evil["id"], "domain": "evil.org", "aliases": ["www.acme.org"]}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "aliases.0"
    # Nor can it register a subdomain of acme's domain as its own domain.
    r = e.post("/domains", json={"account_id": evil["id"], "name": "shop.acme.org"})
    assert r.status_code == 422


def test_a_name_served_by_another_site_conflicts(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    hosted.staff.ok(
        "POST",
        "/sites",
        201,
        json={"account_id": acme["id"], "domain": "acme.org", "aliases": ["www.acme.org"]},
    )
    r = hosted.staff.post("/sites", json={"account_id": acme["id"], "domain": "www.acme.org"})
    assert r.status_code == 409


def test_quota_names_the_quota(hosted: World) -> None:
    acme = hosted.account("acme", sites=1)
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    m.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": "a.acme.org"})
    r = m.post("/sites", json={"account_id": acme["id"], "domain": "b.acme.org"})
    assert r.status_code == 409
    body = r.json()
    assert body["type"] == "urn:konbit:problem:quota-exceeded"
    assert "sites" in body["detail"]
    assert body["errors"][0]["field"] == "quotas.sites"


def test_update_honours_if_match(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    r = m.post("/sites", json={"account_id": acme["id"], "domain": "acme.org"})
    site, etag = r.json(), r.headers["etag"]
    r = m.patch(f"/sites/{site['id']}", json={"php": "8.2"}, headers={"If-Match": etag})
    assert r.status_code == 200, r.text
    new_etag = r.headers["etag"]
    assert new_etag != etag
    r = m.patch(f"/sites/{site['id']}", json={"enabled": False}, headers={"If-Match": etag})
    assert r.status_code == 412
    assert m.ok("GET", f"/sites/{site['id']}")["enabled"] is True
    r = m.patch(
        f"/sites/{site['id']}", json={"aliases": ["www.acme.org"]}, headers={"If-Match": new_etag}
    )
    assert r.status_code == 200
    assert r.json()["aliases"] == ["www.acme.org"]
    assert m.get(f"/sites/{site['id']}").headers["etag"] == r.headers["etag"]


def test_idempotency_key_returns_the_first_answer(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    body = {"account_id": acme["id"], "domain": "acme.org"}
    first = m.post("/sites", json=body, headers={"Idempotency-Key": "k1"})
    again = m.post("/sites", json=body, headers={"Idempotency-Key": "k1"})
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers.get("idempotent-replayed") == "true"
    assert len(m.ok("GET", "/sites")["items"]) == 1
    other = m.post("/sites", json={**body, "php": "8.2"}, headers={"Idempotency-Key": "k1"})
    assert other.status_code == 409


def test_cursor_pagination_and_filters(hosted: World) -> None:
    acme, beta = hosted.account("acme"), hosted.account("beta")
    hosted.domain(acme, "acme.org")
    hosted.domain(beta, "beta.org")
    for i in range(7):
        hosted.staff.ok(
            "POST", "/sites", 201, json={"account_id": acme["id"], "domain": f"s{i}.acme.org"}
        )
    hosted.staff.ok("POST", "/sites", 201, json={"account_id": beta["id"], "domain": "beta.org"})
    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        page = hosted.staff.ok("GET", "/sites", params=params)
        seen += [s["id"] for s in page["items"]]
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert len(seen) == 8 == len(set(seen))
    assert seen == sorted(seen)
    by_account = hosted.staff.ok("GET", "/sites", params={"account_id": beta["id"]})
    assert [s["domain"] for s in by_account["items"]] == ["beta.org"]
    assert len(hosted.staff.ok("GET", "/sites", params={"q": "s3."})["items"]) == 1
    # '_' and '%' are matched literally, not as LIKE wildcards.
    assert hosted.staff.ok("GET", "/sites", params={"q": "%"})["items"] == []
    assert len(hosted.staff.ok("GET", "/sites", params={"status": "pending"})["items"]) == 8
    assert hosted.staff.ok("GET", "/sites", params={"status": "active"})["items"] == []
    r = hosted.staff.get("/sites", params={"cursor": "not-a-cursor"})
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "cursor"


def test_delete_marks_deleting_and_blocks_further_changes(hosted: World) -> None:
    acme = hosted.account("acme")
    domain = hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    site = m.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": "acme.org"})
    gone = m.ok("DELETE", f"/sites/{site['id']}", 202)
    assert gone["status"] == "deleting"
    assert m.patch(f"/sites/{site['id']}", json={"php": "8.2"}).status_code == 409
    # The domain cannot go while a site (even one being deleted) still uses it.
    assert m.delete(f"/domains/{domain['id']}").status_code == 409


def test_viewer_reads_but_cannot_write(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    site = hosted.staff.ok(
        "POST", "/sites", 201, json={"account_id": acme["id"], "domain": "acme.org"}
    )
    viewer = hosted.member(acme, "viewer")
    assert viewer.ok("GET", f"/sites/{site['id']}")["id"] == site["id"]
    r = viewer.patch(f"/sites/{site['id']}", json={"php": "8.2"})
    assert r.status_code == 403
    assert (
        viewer.post("/sites", json={"account_id": acme["id"], "domain": "x.acme.org"}).status_code
        == 403
    )


def test_php_version_must_be_offered_by_the_host(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    r = hosted.staff.post(
        "/sites", json={"account_id": acme["id"], "domain": "acme.org", "php": "5.6"}
    )
    assert r.status_code == 422
    assert r.json()["errors"][0]["field"] == "php"


def test_no_web_host_is_a_clear_conflict(world: World) -> None:
    acme = world.account("acme")
    world.domain(acme, "acme.org")
    r = world.staff.post("/sites", json={"account_id": acme["id"], "domain": "acme.org"})
    assert r.status_code == 409
    assert "konbit host add --role web" in r.json()["detail"]


def test_suspended_account_cannot_add(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    hosted.staff.ok("PATCH", f"/accounts/{acme['id']}", json={"status": "suspended"})
    r = hosted.staff.post("/sites", json={"account_id": acme["id"], "domain": "acme.org"})
    assert r.status_code == 409
    assert "suspended" in r.json()["detail"]
