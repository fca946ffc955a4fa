"""Platforms and site applications through the API: staff build platforms, members read
them and install on their own sites only; hostile input is a 422 naming the field."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from panel.apps.models import SiteApp
from panel.databases.models import Database
from tests.conftest import World

VERSION_PHP = b"<?php\n$wp_version = '6.1.9';\n$wp_db_version = 53496;\n"


def _archive(tmp: Path, version: bytes = VERSION_PHP) -> dict[str, Any]:
    """A sysadmin's archive of a (tiny) WordPress tree."""
    out = tmp / "wp.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name, data in (
            ("wordpress/index.php", b"<?php require __DIR__ . '/wp-blog-header.php';\n"),
            ("wordpress/wp-includes/version.php", version),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return {
        "type": "archive",
        "path": str(out),
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
    }


def _field(response: Any) -> str:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    return str(response.json()["errors"][0]["field"])


@pytest.fixture
def platform(hosted: World, tmp_path: Path) -> dict[str, Any]:
    return hosted.staff.ok(  # type: ignore[no-any-return]
        "POST", "/platforms", 201, json={"name": "wordpress-6.1.9", "source": _archive(tmp_path)}
    )


def _php_site(world: World, slug: str) -> tuple[dict[str, Any], Any, dict[str, Any]]:
    account = world.account(slug)
    world.domain(account, f"{slug}.test")
    member = world.member(account)
    site = member.ok(
        "POST",
        "/sites",
        201,
        json={"account_id": account["id"], "domain": f"{slug}.test", "php": "8.2"},
    )
    return account, member, site


def test_staff_build_members_read_and_install_on_their_own_sites(
    hosted: World, platform: dict[str, Any], tmp_path: Path
) -> None:
    assert platform["app"] == "wordpress" and platform["version"] == "6.1.9"
    assert len(platform["sha256"]) == 64 and platform["size"] > 0
    a, member_a, site_a = _php_site(hosted, "alpha")
    _b, member_b, site_b = _php_site(hosted, "beta")
    # Members read platforms, never make or change them.
    assert [p["name"] for p in member_a.ok("GET", "/platforms")["items"]] == ["wordpress-6.1.9"]
    body = {"name": "wordpress-x", "source": _archive(tmp_path)}
    assert member_a.post("/platforms", json=body).status_code == 403
    assert (
        member_a.patch(f"/platforms/{platform['id']}", json={"enabled": False}).status_code == 403
    )
    update = {"target_id": platform["id"]}
    assert member_a.post(f"/platforms/{platform['id']}/update", json=update).status_code == 403
    assert member_a.get("/apps/status").status_code == 403

    install = {"platform_id": platform["id"], "title": "Alpha", "admin_email": "a@alpha.test"}
    # Another account's site is not there at all.
    assert member_b.post(f"/sites/{site_a['id']}/app", json=install).status_code == 404
    got = member_a.ok("POST", f"/sites/{site_a['id']}/app", 202, json=install)
    assert len(got["admin_password"]) >= 20 and got["app"]["status"] == "installing"
    assert member_b.get(f"/sites/{site_a['id']}/app").status_code == 404
    assert member_a.ok("GET", f"/sites/{site_a['id']}/app")["title"] == "Alpha"
    assert member_a.post(f"/sites/{site_a['id']}/app", json=install).status_code == 409
    # Its database is one of the account's; the password is nowhere, its hash until used.
    with hosted.db.session() as session:
        app = session.scalars(select(SiteApp)).one()
        db = session.get_one(Database, app.database_id)
        assert db.account_id == a["id"] and db.name == f"alpha_app{site_a['id']}"
        assert app.admin_hash and got["admin_password"] not in app.admin_hash
    task = hosted.staff.ok("GET", f"/tasks/{got['task_id']}")
    assert got["admin_password"] not in str(task) and "$2y$" not in str(task)
    assert member_b.get(f"/tasks/{got['task_id']}").status_code == 404
    assert member_b.get(f"/sites/{site_b['id']}/app").status_code == 404  # none yet


def _dokuwiki_archive(tmp: Path) -> dict[str, Any]:
    """A sysadmin's archive of a (tiny) DokuWiki tree, in upstream's layout."""
    out = tmp / "dokuwiki.tar.gz"
    with tarfile.open(out, "w:gz") as tar:
        for name, data in (
            ("dokuwiki/VERSION", b'2024-02-06b "Kaos"\n'),
            ("dokuwiki/doku.php", b"<?php\n"),
            ("dokuwiki/inc/init.php", b"<?php\n"),
            ("dokuwiki/conf/dokuwiki.php", b"<?php\n$conf['savedir'] = './data';\n"),
        ):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    digest = hashlib.sha256(out.read_bytes()).hexdigest()
    return {"type": "archive", "path": str(out), "sha256": digest}


def test_a_wiki_is_installed_without_a_database(hosted: World, tmp_path: Path) -> None:
    body = {"name": "dokuwiki-x", "source": _dokuwiki_archive(tmp_path)}
    dw = hosted.staff.ok("POST", "/platforms", 201, json=body)
    assert (dw["app"], dw["version"]) == ("dokuwiki", "2024-02-06b"), dw
    _a, member, site = _php_site(hosted, "alpha")
    install = {"platform_id": dw["id"], "title": "Alpha Wiki", "admin_email": "a@alpha.test"}
    got = member.ok("POST", f"/sites/{site['id']}/app", 202, json=install)
    assert got["app"]["database_id"] is None and got["app"]["status"] == "installing", got
    with hosted.db.session() as session:
        assert session.scalars(select(Database)).all() == []
        app = session.scalars(select(SiteApp)).one()
        # DokuWiki's PassHash verifies bcrypt as PHP spells it
        assert app.admin_hash and app.admin_hash.startswith("$2y$10$")
    assert hosted.staff.ok("GET", f"/tasks/{got['task_id']}")["kind"] == "app-install"


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"name": "../etc", "source": {"type": "debian", "package": "wordpress"}}, "name"),
        ({"name": "wp x", "source": {"type": "debian", "package": "wordpress"}}, "name"),
        ({"name": "wp", "source": {"type": "debian", "package": "bash"}}, "source.debian.package"),
        (
            {"name": "wp", "source": {"type": "archive", "path": "rel/x.tgz", "sha256": "0" * 64}},
            "source.archive.path",
        ),
        (
            {"name": "wp", "source": {"type": "archive", "path": "/a/../b", "sha256": "0" * 64}},
            "source.archive.path",
        ),
        (
            {"name": "wp", "source": {"type": "archive", "path": "/x.tgz", "sha256": "z"}},
            "source.archive.sha256",
        ),
    ],
)
def test_hostile_platforms_are_refused_naming_the_field(
    hosted: World, body: dict[str, Any], field: str
) -> None:
    assert _field(hosted.staff.post("/platforms", json=body)) == field


def test_an_archive_is_checked_against_its_checksum(hosted: World, tmp_path: Path) -> None:
    source = {**_archive(tmp_path), "sha256": "0" * 64}
    r = hosted.staff.post("/platforms", json={"name": "wordpress-x", "source": source})
    assert _field(r) == "source" and "sha256" in r.text


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        ({"admin_user": "root'; DROP TABLE wp_users; --"}, "admin_user"),
        ({"admin_user": "a b"}, "admin_user"),
        ({"title": "<script>"}, "title"),
        ({"admin_email": "not-an-address"}, "admin_email"),
        ({"platform_id": 999}, "platform_id"),
    ],
)
def test_hostile_installs_are_refused_naming_the_field(
    hosted: World, platform: dict[str, Any], extra: dict[str, Any], field: str
) -> None:
    _a, member, site = _php_site(hosted, "alpha")
    body = {"platform_id": platform["id"], "title": "Alpha", "admin_email": "a@alpha.test", **extra}
    assert _field(member.post(f"/sites/{site['id']}/app", json=body)) == field
