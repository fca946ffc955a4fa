from tests.conftest import World


def test_site_create_and_read(hosted: World) -> None:
    acme = hosted.account("acme")
    hosted.domain(acme, "acme.org")
    m = hosted.member(acme)
    site = m.ok("POST", "/sites", 201, json={"account_id": acme["id"], "domain": "www.acme.org"})
    assert site["status"] == "pending"
    assert m.ok("GET", f"/sites/{site['id']}")["domain"] == "www.acme.org"
