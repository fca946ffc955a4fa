"""HTTPS through the API: a member's certificate is checked field by field; keys never
come back; ACME state and renewal requests."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from sqlalchemy import select

from panel.sites.acme import due_sites
from panel.sites.models import SiteCertificate
from tests.certs import issue, make_ca
from tests.conftest import World


def _site(world: World, **extra: Any) -> dict[str, Any]:
    acme = world.account("acme")
    world.domain(acme, "acme.org")
    return world.staff.ok(  # type: ignore[no-any-return]
        "POST",
        "/sites",
        201,
        json={"account_id": acme["id"], "domain": "acme.org", "aliases": ["www.acme.org"], **extra},
    )


def _errors(r: Any) -> list[tuple[str, str]]:
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    return [(e["field"], e["reason"]) for e in r.json()["errors"]]


def test_custom_certificate_is_checked_and_its_key_never_returned(hosted: World) -> None:
    site = _site(hosted)
    path = f"/sites/{site['id']}/certificate"
    ca = make_ca()
    inter = issue(ca, [], ca_cert=True)
    leaf = issue(inter, ["acme.org", "www.acme.org"])
    chain = leaf.cert_pem + inter.cert_pem

    other = issue(inter, ["acme.org", "www.acme.org"])
    assert (
        _errors(
            hosted.staff.request(
                "PUT", path, json={"certificate": chain, "private_key": other.key_pem}
            )
        )[0][0]
        == "private_key"
    )
    reversed_chain = inter.cert_pem + leaf.cert_pem
    errors = _errors(
        hosted.staff.request(
            "PUT", path, json={"certificate": reversed_chain, "private_key": leaf.key_pem}
        )
    )
    assert any("out of order" in reason for _f, reason in errors), errors
    stranger = issue(inter, ["acme.org"])  # does not cover www.acme.org
    errors = _errors(
        hosted.staff.request(
            "PUT",
            path,
            json={
                "certificate": stranger.cert_pem + inter.cert_pem,
                "private_key": stranger.key_pem,
            },
        )
    )
    assert errors == [("certificate", errors[0][1])] and "www.acme.org" in errors[0][1]
    old = issue(
        inter,
        ["acme.org", "www.acme.org"],
        days=30,
        start=dt.datetime.now(dt.UTC) - dt.timedelta(days=40),
    )
    errors = _errors(
        hosted.staff.request(
            "PUT",
            path,
            json={"certificate": old.cert_pem + inter.cert_pem, "private_key": old.key_pem},
        )
    )
    assert errors[0][0] == "certificate" and "expired" in errors[0][1]
    errors = _errors(
        hosted.staff.request(
            "PUT", path, json={"certificate": "hello", "private_key": "-----BEGIN nothing"}
        )
    )
    assert {f for f, _ in errors} == {"certificate", "private_key"}
    assert hosted.staff.ok("GET", f"/sites/{site['id']}")["https"] == "off"

    r = hosted.staff.request("PUT", path, json={"certificate": chain, "private_key": leaf.key_pem})
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["https"] == "custom" and out["https_status"] == "active"
    assert out["certificate"]["serial"] == format(leaf.cert.serial_number, "x")
    assert out["chain"].count("BEGIN CERTIFICATE") == 2
    got = hosted.staff.ok("GET", f"/sites/{site['id']}")
    assert got["status"] == "pending" and got["https"] == "custom"
    listed = hosted.staff.ok("GET", "/sites")["items"][0]
    assert listed["https_status"] == "active" and listed["certificate"]["source"] == "custom"
    everything = json.dumps([out, got, listed, hosted.staff.ok("GET", path)])
    assert "PRIVATE KEY" not in everything
    events = hosted.staff.ok("GET", "/audit-events")["items"]
    assert "PRIVATE KEY" not in json.dumps(events)
    with hosted.db.session() as session:
        row = session.scalars(select(SiteCertificate)).one()
        assert row.key_sealed and "PRIVATE" not in row.key_sealed  # encrypted at rest


def test_modes_and_renewal_requests(hosted: World) -> None:
    r = hosted.staff.post("/sites", json={"account_id": 1, "domain": "x.org", "https": "custom"})
    assert r.status_code in (404, 422)
    site = _site(hosted, https="acme")
    assert site["https_status"] == "pending" and site["https_redirect"] is True
    assert _errors(hosted.staff.patch(f"/sites/{site['id']}", json={"https": "custom"}))[0][0] == (
        "https"
    )
    # Not live on its host yet: no order.
    with hosted.db.session() as session:
        assert due_sites(session) == []
    r = hosted.staff.post(f"/sites/{site['id']}/certificate/renew")
    assert r.status_code == 202 and r.json()["https_status"] == "pending"
    hosted.staff.ok("PATCH", f"/sites/{site['id']}", json={"https": "off"})
    _errors(hosted.staff.post(f"/sites/{site['id']}/certificate/renew"))
    viewer = hosted.member({"id": site["account_id"], "slug": "acme"}, "viewer")
    assert viewer.get(f"/sites/{site['id']}/certificate").status_code == 200
    assert viewer.request(
        "PUT", f"/sites/{site['id']}/certificate", json={"certificate": "x", "private_key": "y"}
    ).status_code in (403, 422)
    r = hosted.staff.patch(f"/sites/{site['id']}", json={"https_redirect": None})
    assert _errors(r)[0][0] == "https_redirect"
