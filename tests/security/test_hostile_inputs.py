"""A corpus of hostile names from the history of hosting-panel vulnerabilities.

Each one must be refused at the API boundary with a 422 problem naming the field, and must
leave nothing behind.  Sources of inspiration: command injection through domain and user
names in panel shell scripts (cPanel, Webmin, VestaCP/HestiaCP CVEs), nginx/postfix config
injection through newlines and ';', SQL injection through database names, path traversal
in document roots, LIKE wildcards in MySQL grants, homograph domains, and cross-tenant
subdomain takeover.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.conftest import World

SHELL = [
    "a;rm -rf /",
    "$(reboot)",
    "`id`",
    "a|nc evil 1",
    "a&&b",
    "a>b",
    "a b",
    "'a'",
    '"a"',
    "a\\b",
    "-rf",
    "*",
    "a?b",
    "~root",
    "a{b,c}",
    "!a",
]
CONFIG = [
    "a\nb",
    "a\r\nb",
    "a;b",
    "a}b",
    "a{b",
    "a#b",
    "a\tb",
    "a\x00b",
    "a\x1bb",
    "a\u2028b",
    "a\u202eb",
    "a\u200bb",
]
SQL = ["a'--", "a';DROP TABLE x;--", 'a"b', "a`b", "a/*b*/", "a%", "a_%"]
PATHS = ["../etc", "a/../../b", "/etc/passwd", "a//b", ".ssh", "a/.git", "~/x", "a/./b", "a\\..\\b"]

DOMAINS = [f"{x}.acme.test" for x in SHELL + CONFIG + SQL] + [
    "acme.test/../x",
    "xn--.acme.test",
    "-x.acme.test",
    "x-.acme.test",
    "a..acme.test",
    "*.acme.test",
    "_dmarc.acme.test",
    "a" * 64 + ".acme.test",
    "localhost",
    "127.0.0.1",
    "acme",
    "аcme.test",  # Cyrillic 'а' mixed with Latin
    "xn--cme-6cd.test",  # the same look-alike, already in punycode
    "ассе.test",  # whole-script Cyrillic look-alike of Latin letters
    "acme.test\n",
    " acme.test ;",
    "acme.test%00",
    "acme.test:80",
    "user@acme.test",
    ("a." * 130) + "test",
]
LOCAL_PARTS = (
    SHELL
    + CONFIG
    + SQL
    + [
        "root",
        "postmaster",
        "mailer-daemon",
        ".a",
        "a.",
        "a..b",
        "a+b",
        "a=b",
        "a@b",
        "",
        "x" * 65,
        "list-request",
        "news-bounces",
        "ä",
        "a/b",
    ]
)
DB_SUFFIXES = SHELL + CONFIG + SQL + ["", "A", "a-b", "a_b", "x" * 40, "a.b", "ä"]
SLUGS = (
    SHELL
    + CONFIG
    + [
        "root",
        "mysql",
        "www-data",
        "postgres",
        "A",
        "1a",
        "a",
        "a_b",
        "a-",
        "a--b",
        "x" * 32,
        "systemd-x",
        "ä",
    ]
)


def _acme(world: World) -> dict[str, Any]:
    acme = world.account("acme")
    world.domain(acme, "acme.test")
    return acme


def _refused(response: Any, field_prefix: str) -> None:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    fields = [e["field"] for e in response.json()["errors"]]
    assert any(f.startswith(field_prefix) for f in fields), fields


def test_hostile_domains(hosted: World) -> None:
    acme = _acme(hosted)
    for name in DOMAINS:
        _refused(
            hosted.staff.post("/domains", json={"account_id": acme["id"], "name": name}), "name"
        )
        _refused(
            hosted.staff.post("/sites", json={"account_id": acme["id"], "domain": name}), "domain"
        )
        if name == "*.acme.test":
            continue  # a site's wildcard alias, refused as a domain (tests/api/test_dns.py)
        _refused(
            hosted.staff.post(
                "/sites", json={"account_id": acme["id"], "domain": "acme.test", "aliases": [name]}
            ),
            "aliases",
        )
    assert hosted.staff.ok("GET", "/sites")["items"] == []
    assert len(hosted.staff.ok("GET", "/domains")["items"]) == 1


def test_hostile_mail_local_parts(hosted: World) -> None:
    acme = _acme(hosted)
    for local in LOCAL_PARTS:
        address = f"{local}@acme.test"
        _refused(
            hosted.staff.post(
                "/mailboxes",
                json={"account_id": acme["id"], "address": address, "password": "12345678"},
            ),
            "address",
        )
        _refused(
            hosted.staff.post(
                "/lists",
                json={"account_id": acme["id"], "address": address, "owners": ["o@acme.test"]},
            ),
            "address",
        )
        _refused(
            hosted.staff.post(
                "/mail-aliases",
                json={
                    "account_id": acme["id"],
                    "address": "ok@acme.test",
                    "destinations": ["fine@acme.test", f"{local}x\n@acme.test"],
                },
            ),
            "destinations",
        )
    assert hosted.staff.ok("GET", "/mailboxes")["items"] == []
    assert hosted.staff.ok("GET", "/lists")["items"] == []


def test_crafted_alias_cannot_add_a_map_entry(hosted: World) -> None:
    """A destination with a newline or a comma would be a second postfix map entry."""
    acme = _acme(hosted)
    for dest in [
        "a@acme.test\nevil@acme.test root",
        "a@acme.test, root@localhost",
        "a@acme.test root@localhost",
        "|/bin/sh -c id",
        "/etc/passwd",
        ":include:/etc/shadow",
        "a@acme.test\r\nBcc: x@evil.test",
    ]:
        _refused(
            hosted.staff.post(
                "/mail-aliases",
                json={"account_id": acme["id"], "address": "ok@acme.test", "destinations": [dest]},
            ),
            "destinations",
        )


def test_hostile_database_and_user_names(hosted: World) -> None:
    acme = _acme(hosted)
    for suffix in DB_SUFFIXES:
        for path in ("/databases", "/database-users"):
            body: dict[str, Any] = {"account_id": acme["id"], "name": f"acme_{suffix}"}
            if path == "/database-users":
                body["password"] = "12345678"
            _refused(hosted.staff.post(path, json=body), "name")
    for name in [
        "mysql",
        "information_schema",
        "performance_schema",
        "root",
        "postgres",
        "template1",
        "sys",
    ]:
        _refused(
            hosted.staff.post("/databases", json={"account_id": acme["id"], "name": name}), "name"
        )
    # A grant on acme_shop must never be a LIKE pattern that also matches acmeXshop.
    _refused(
        hosted.staff.post(
            "/database-users",
            json={
                "account_id": acme["id"],
                "name": "acme_u",
                "password": "12345678",
                "databases": ["acme_sh_p"],
            },
        ),
        "databases",
    )
    assert hosted.staff.ok("GET", "/databases")["items"] == []


def test_hostile_slugs_and_paths(hosted: World) -> None:
    for slug in SLUGS:
        _refused(
            hosted.staff.post("/accounts", json={"slug": slug, "name": "x", "email": "a@b.test"}),
            "slug",
        )
    acme = _acme(hosted)
    for path in PATHS + SHELL + CONFIG:
        _refused(
            hosted.staff.post(
                "/sites",
                json={"account_id": acme["id"], "domain": "acme.test", "document_root": path},
            ),
            "document_root",
        )


def test_control_characters_refused_in_every_text_field(hosted: World) -> None:
    for bad in ["Acme\nInc", "Acme\x00", "Acme\u202e", "Acme\x7f"]:
        _refused(
            hosted.staff.post(
                "/accounts", json={"slug": "acme2", "name": bad, "email": "a@b.test"}
            ),
            "name",
        )
    _refused(hosted.staff.get("/sites", params={"q": "a\nb"}), "q")
    _refused(hosted.staff.post("/tokens", json={"name": "x\ny", "scopes": ["admin"]}), "name")


@pytest.mark.parametrize("password", ["p" * 8, "pässwörd ' \" ; $(id) `x` \\ 𝄞", "x" * 1024])
def test_passwords_accept_printable_text_and_are_never_echoed(hosted: World, password: str) -> None:
    acme = _acme(hosted)
    r = hosted.staff.post(
        "/mailboxes",
        json={"account_id": acme["id"], "address": "a@acme.test", "password": password},
    )
    assert r.status_code == 201, r.text
    assert password not in r.text
    events = hosted.staff.get("/audit-events").text
    assert password not in events


def test_passwords_with_controls_or_too_long_are_refused(hosted: World) -> None:
    acme = _acme(hosted)
    for password in ["short", "new\nline", "nul\x00byte", "x" * 1025]:
        _refused(
            hosted.staff.post(
                "/mailboxes",
                json={"account_id": acme["id"], "address": "a@acme.test", "password": password},
            ),
            "password",
        )


def test_cross_tenant_subdomain_takeover(hosted: World) -> None:
    acme, evil = hosted.account("acme"), hosted.account("evil")
    hosted.domain(acme, "acme.test")
    e = hosted.member(evil, "owner")
    for name in ["shop.acme.test", "a.b.acme.test"]:
        _refused(e.post("/domains", json={"account_id": evil["id"], "name": name}), "name")
    # The parent of someone's domain is refused too: it would capture their names.
    hosted.domain(evil, "evil.test")
    hosted.domain(acme, "shop.other.test")
    _refused(e.post("/domains", json={"account_id": evil["id"], "name": "other.test"}), "name")
    for path, body in [
        ("/mailboxes", {"address": "x@acme.test", "password": "12345678"}),
        ("/mail-aliases", {"address": "@acme.test", "destinations": ["x@evil.test"]}),
        ("/lists", {"address": "x@shop.acme.test", "owners": ["x@evil.test"]}),
    ]:
        _refused(e.post(path, json={"account_id": evil["id"], **body}), "address")
