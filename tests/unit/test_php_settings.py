"""A site's PHP settings, with no host: the allow-list's checks, the site's own pool and
its vhost's socket (nginx and apache2), and back to the account's pool without them."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from pydantic import ValidationError

from provisioners.api import AccountView, DesiredState, HostView, Item, SiteView
from provisioners.registry import build_catalog
from provisioners.web import Apache2, Nginx, PhpFpm
from provisioners.web.php import GLOBAL_FPM
from provisioners.web.php_settings import PhpSettings, pool_lines

ACME = AccountView(1, "acme", "active")
SHARED_POOL = """\
; Managed by Konbit: PHP 8.2 for account acme. Edits are overwritten.
[konbit-acme]
user = acme
group = acme
listen = /run/php/konbit-acme-8.2.sock
listen.owner = www-data
listen.group = www-data
listen.mode = 0660
pm = ondemand
pm.max_children = 8
pm.process_idle_timeout = 30s
chdir = /
php_admin_value[open_basedir] = /var/www/konbit/acme/:/tmp/:/srv/konbit/platforms/
php_admin_value[upload_tmp_dir] = /tmp
php_admin_value[session.save_path] = /tmp
"""


def _site(site_id: int, domain: str, php: str | None = "8.2") -> SiteView:
    return SiteView(site_id, 1, ACME, domain, (), f"www/{domain}", php, "off", True, False)


def _item(site_id: int, item_id: int = 5, deleting: bool = False, **spec: Any) -> Item[Any]:
    return Item(
        item_id, 1, "php_settings", ACME, f"s{site_id}", PhpSettings(**spec), deleting, site_id
    )


def _state(
    *items: Item[Any], server: str = "nginx", failed: frozenset[tuple[str, int]] = frozenset()
) -> DesiredState:
    host = HostView(1, "web1", ("web",), {"web_server": server, "php_versions": ["8.2"]})
    sites = (_site(7, "www.acme.test"), _site(8, "blog.acme.test"), _site(9, "s.acme.test", None))
    return DesiredState(
        host=host,
        accounts=(ACME,),
        sites=sites,
        objects={"php_settings": items} if items else {},
        failed=failed,
    )


def _files(plugin: Any, state: DesiredState) -> dict[str, str]:
    return {f.path: f.content.decode() for f in plugin.render(state)}


def test_the_kind_is_declared_on_the_php_plugin_and_passes_the_registry() -> None:
    kind = build_catalog([PhpFpm(), Nginx()]).kinds["php_settings"]
    assert (kind.role, kind.placement, kind.one_per_site, kind.spec) == (
        "web",
        "site",
        True,
        PhpSettings,
    )


def test_values_are_normalised_and_rendered_admin_for_caps() -> None:
    spec = PhpSettings.model_validate(
        {
            "memory_limit": "1g",
            "upload_max_filesize": "64m",
            "post_max_size": "100M",
            "max_execution_time": "120",
            "display_errors": True,
            "allow_url_fopen": False,
            "date_timezone": "America/Port-au-Prince",
            "session_gc_maxlifetime": 3600,
        }
    )
    assert spec.memory_limit == "1024M" and spec.upload_max_filesize == "64M"
    assert pool_lines(spec) == [
        "php_admin_value[memory_limit] = 1024M",
        "php_admin_value[upload_max_filesize] = 64M",
        "php_admin_value[post_max_size] = 100M",
        "php_admin_value[max_execution_time] = 120",
        "php_flag[display_errors] = on",
        "php_admin_flag[allow_url_fopen] = off",
        'php_value[date.timezone] = "America/Port-au-Prince"',
        "php_value[session.gc_maxlifetime] = 3600",
    ]
    assert pool_lines(PhpSettings()) == []


@pytest.mark.parametrize(
    ("spec", "field"),
    [
        ({"memory_limit": "256M\nphp_admin_value[open_basedir] = /"}, "memory_limit"),
        ({"memory_limit": "256M;"}, "memory_limit"),
        ({"memory_limit": "-1"}, "memory_limit"),
        ({"memory_limit": "8M"}, "memory_limit"),
        ({"memory_limit": "2G"}, "memory_limit"),
        ({"memory_limit": 268435456}, "memory_limit"),
        ({"memory_limit": "２５６M"}, "memory_limit"),  # full-width digits
        ({"upload_max_filesize": "1024M", "post_max_size": "512M"}, "upload_max_filesize"),
        ({"upload_max_filesize": "100M", "post_max_size": "50M"}, "post_max_size"),
        ({"upload_max_filesize": "100M"}, "post_max_size"),  # PHP's 8M would refuse it
        ({"max_execution_time": 0}, "max_execution_time"),
        ({"max_execution_time": 601}, "max_execution_time"),
        ({"max_input_vars": 999}, "max_input_vars"),
        ({"display_errors": "maybe"}, "display_errors"),
        ({"date_timezone": "Mars/Olympus"}, "date_timezone"),
        ({"date_timezone": "Europe/Paris\n"}, "date_timezone"),
        ({"date_timezone": "../../etc/passwd"}, "date_timezone"),
        ({"session_gc_maxlifetime": 10}, "session_gc_maxlifetime"),
        ({"open_basedir": "/"}, "open_basedir"),  # not on the allow-list
    ],
)
def test_hostile_or_out_of_range_values_are_refused_naming_the_field(
    spec: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        PhpSettings.model_validate(spec)
    assert [e["loc"] for e in caught.value.errors()] == [(field,)]


def test_without_settings_the_rendered_files_are_the_shared_pools() -> None:
    state = _state()
    pools = _files(PhpFpm(), state)
    assert pools == {
        "php/8.2/00-konbit.conf": GLOBAL_FPM.decode(),
        "php/8.2/acme.conf": SHARED_POOL,
    }
    for conf in _files(Nginx(), state).values():
        assert "_site" not in conf


def test_a_site_with_settings_gets_its_own_pool_and_its_vhost_points_there() -> None:
    state = _state(_item(7, memory_limit="200M", display_errors=True))
    pools = _files(PhpFpm(), state)
    assert pools["php/8.2/acme.conf"] == SHARED_POOL  # the account's other sites keep it
    own = pools["php/8.2/php_settings-5.conf"]
    assert own.startswith(
        "; Managed by Konbit: PHP 8.2 for site 7 (www.acme.test) of account acme."
    )
    for line in (
        "[konbit-acme_site7]",
        "user = acme",
        "listen = /run/php/konbit-acme_site7-8.2.sock",
        "php_admin_value[open_basedir] = /var/www/konbit/acme/:/tmp/:/srv/konbit/platforms/",
        "php_admin_value[memory_limit] = 200M",
        "php_flag[display_errors] = on",
    ):
        assert f"\n{line}\n" in own, line
    assert len(pools) == 3
    nginx = _files(Nginx(), state)
    assert "fastcgi_pass unix:/run/php/konbit-acme_site7-8.2.sock;" in nginx["nginx/site-7.conf"]
    assert "fastcgi_pass unix:/run/php/konbit-acme-8.2.sock;" in nginx["nginx/site-8.conf"]
    apache = _files(Apache2(), _state(*state.objects["php_settings"], server="apache2"))
    assert (
        'SetHandler "proxy:unix:/run/php/konbit-acme_site7-8.2.sock|fcgi://localhost"'
        in apache["apache2/site-7.conf"]
    )
    assert "/run/php/konbit-acme-8.2.sock|" in apache["apache2/site-8.conf"]
    assert PhpFpm().object_of("php/8.2/php_settings-5.conf") == ("php_settings", 5)
    assert PhpFpm().object_of("php/8.2/acme.conf") is None
    message = "ERROR: [/etc/konbit/live/php/8.2/php_settings-5.conf:18] unknown entry"
    assert PhpFpm().blame(message) == {("php_settings", 5)}


def test_deleted_failed_empty_or_static_site_settings_leave_the_shared_pool() -> None:
    before = {**_files(PhpFpm(), _state()), **_files(Nginx(), _state())}
    for state in (
        _state(_item(7, deleting=True, memory_limit="200M")),
        _state(_item(7, memory_limit="200M"), failed=frozenset({("php_settings", 5)})),
        _state(_item(7)),  # nothing set: PHP's defaults, which the account's pool has
        _state(_item(9, memory_limit="200M")),  # a static site runs no PHP
    ):
        assert {**_files(PhpFpm(), state), **_files(Nginx(), state)} == before


def test_settings_follow_the_sites_php_version_and_go_with_the_site() -> None:
    state = _state(_item(7, memory_limit="64M"))
    moved = dataclasses.replace(
        state,
        host=HostView(1, "web1", ("web",), {"php_versions": ["8.2", "8.3"]}),
        sites=(dataclasses.replace(state.sites[0], php="8.3"), *state.sites[1:]),
    )
    pools = _files(PhpFpm(), moved)
    assert "listen = /run/php/konbit-acme_site7-8.3.sock" in pools["php/8.3/php_settings-5.conf"]
    assert "php/8.2/php_settings-5.conf" not in pools
    gone = dataclasses.replace(
        state, sites=(dataclasses.replace(state.sites[0], deleting=True), *state.sites[1:])
    )
    assert not any("php_settings" in p for p in _files(PhpFpm(), gone))
