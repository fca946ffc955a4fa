"""A site's PHP settings on a real web host: set, changed and deleted through the API,
seen by the site's own ``phpinfo()`` over HTTP (nginx and apache2)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from panel.testhosts import TestHost
from tests.integration.conftest import Panel, wait_for

pytestmark = pytest.mark.integration

PROBE = (
    "<?php phpinfo(INFO_CONFIGURATION | INFO_MODULES);\n"
    "echo 'raise:', var_export(ini_set('memory_limit', '1G'), true), ':', "
    "ini_get('memory_limit'), ':end';"
)


def _php_site(panel: Panel, slug: str, domain: str) -> dict[str, Any]:
    account = panel.world.account(slug)
    panel.world.domain(account, domain)
    return panel.staff.ok(  # type: ignore[no-any-return]
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": domain, "php": "8.2"}
    )


def _place_probe(web: TestHost, slug: str, domain: str) -> None:
    root = f"/var/www/konbit/{slug}/www/{domain}"
    web.exec(
        ["sh", "-c", 'cat > "$1/info.php" && chown "$2" "$1/info.php"', "x", root, slug],
        input=PROBE,
        check=True,
    )


def _ini(body: str, directive: str) -> str:
    """The local value of a directive in phpinfo()'s HTML table."""
    m = re.search(
        rf'<td class="e">{re.escape(directive)}\s*</td><td class="v">([^<]*?)\s*</td>', body
    )
    assert m, (directive, body[:2000])
    return m.group(1)


def _served(web: TestHost, domain: str, memory: str) -> str:
    """phpinfo() of the site once it shows ``memory`` (a reload takes effect promptly)."""
    return wait_for(web, domain, 200, f'memory_limit</td><td class="v">{memory}<', "/info.php")


def _reconciled(panel: Panel, host: dict[str, Any]) -> str:
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    return str(panel.staff.ok("GET", f"/applies/{report.apply_id}")["log"])


def _round_trip(panel: Panel, web: TestHost, server: str) -> None:
    host = panel.register(web, settings={"web_server": server})
    site = _php_site(panel, "pia", "pia.test")
    panel.staff.ok(
        "POST",
        "/sites",
        201,
        json={"account_id": site["account_id"], "domain": "www.pia.test", "php": "8.2"},
    )
    _reconciled(panel, host)
    for domain in ("pia.test", "www.pia.test"):
        _place_probe(web, "pia", domain)
    body = _served(web, "pia.test", "128M")
    assert _ini(body, "display_errors") == "Off"

    made = panel.staff.ok(
        "POST",
        "/objects/php_settings",
        201,
        json={
            "account_id": site["account_id"],
            "name": f"site-{site['id']}",
            "site_id": site["id"],
            "spec": {
                "memory_limit": "200M",
                "display_errors": True,
                "date_timezone": "Europe/Paris",
            },
        },
    )
    log = _reconciled(panel, host)
    # The site's pool was checked with the rest, and php-fpm reloaded once.
    assert "validated: php-fpm8.2 -t" in log, log
    assert log.count("reload-or-restart php8.2-fpm") == 1, log
    body = _served(web, "pia.test", "200M")
    assert _ini(body, "display_errors") == "On"
    assert _ini(body, "date.timezone") == "Europe/Paris"
    # An admin value: the member's code cannot raise it with ini_set().
    assert body.endswith("raise:false:200M:end")
    assert panel.staff.ok("GET", f"/objects/php_settings/{made['id']}")["status"] == "active"
    # The account's other site stays on the account's pool, with PHP's defaults.
    assert _ini(_served(web, "www.pia.test", "128M"), "display_errors") == "Off"
    pools = Path(web.path("/etc/konbit/live/php/8.2"))
    assert (pools / f"php_settings-{made['id']}.conf").is_file()

    panel.staff.ok(
        "PATCH",
        f"/objects/php_settings/{made['id']}",
        json={"spec": {"memory_limit": "300M", "display_errors": None}},
    )
    _reconciled(panel, host)
    body = _served(web, "pia.test", "300M")
    assert _ini(body, "display_errors") == "Off"  # no longer set: the default again
    assert _ini(body, "date.timezone") == "Europe/Paris"  # a PATCH merges: kept

    panel.staff.ok("DELETE", f"/objects/php_settings/{made['id']}", 202)
    _reconciled(panel, host)
    assert panel.staff.get(f"/objects/php_settings/{made['id']}").status_code == 404
    _served(web, "pia.test", "128M")
    assert not (pools / f"php_settings-{made['id']}.conf").exists()
    assert panel.reconcile(host["id"]).result == "noop"

    # Settings go with their site.
    again = panel.staff.ok(
        "POST",
        "/objects/php_settings",
        201,
        json={
            "account_id": site["account_id"],
            "name": f"site-{site['id']}",
            "site_id": site["id"],
            "spec": {"max_execution_time": 60},
        },
    )
    _reconciled(panel, host)
    assert (pools / f"php_settings-{again['id']}.conf").is_file()
    panel.staff.ok("DELETE", f"/sites/{site['id']}", 202)
    _reconciled(panel, host)
    assert panel.staff.get(f"/objects/php_settings/{again['id']}").status_code == 404
    assert sorted(p.name for p in pools.iterdir()) == ["00-konbit.conf", "pia.conf"]


def test_php_settings_show_in_phpinfo_on_nginx(panel: Panel, web1: TestHost) -> None:
    _round_trip(panel, web1, "nginx")


def test_php_settings_show_in_phpinfo_on_apache2(panel: Panel, web2: TestHost) -> None:
    _round_trip(panel, web2, "apache2")
