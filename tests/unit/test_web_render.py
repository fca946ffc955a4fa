"""Rendering web host files from a desired state: facts in, files and steps out."""

from __future__ import annotations

import dataclasses

from provisioners.api import AccountView, DesiredState, Facts, HostView, SiteView
from provisioners.web import (
    NGINX_LIMITS,
    NGINX_MAIN_INCLUDE,
    NGINX_SYSTEMD_DROPIN,
    WEB_DIRS,
    Apache2,
    Nginx,
    PhpFpm,
    WebHome,
)
from provisioners.web.home import _ENSURE_DIRS


def _state(**site: object) -> DesiredState:
    acme = AccountView(1, "acme", "active")
    values = {
        "id": 7,
        "version": 1,
        "account": acme,
        "domain": "www.acme.test",
        "aliases": ("acme.test",),
        "document_root": "www/www.acme.test",
        "php": None,
        "https": "off",
        "enabled": True,
        "deleting": False,
        **site,
    }
    host = HostView(1, "web1", ("web",), {"web_server": "nginx", "php_versions": ["8.2"]})
    return DesiredState(host=host, accounts=(acme,), sites=(SiteView(**values),))  # type: ignore[arg-type]


def _files(plugin: object, state: DesiredState) -> dict[str, str]:
    return {f.path: f.content.decode() for f in plugin.render(state)}  # type: ignore[attr-defined]


def test_static_site_vhost() -> None:
    files = _files(Nginx(), _state())
    conf = files["nginx/site-7.conf"]
    assert "server_name www.acme.test acme.test;" in conf
    assert "root /var/www/konbit/acme/www/www.acme.test;" in conf
    assert "fastcgi_pass" not in conf
    assert "access_log /var/log/konbit/web/site-7.access.log konbit;" in conf
    assert "log_format konbit" in files["nginx/00-konbit.conf"]


def test_php_site_gets_its_accounts_pool() -> None:
    state = _state(php="8.2")
    conf = _files(Nginx(), state)["nginx/site-7.conf"]
    assert "fastcgi_pass unix:/run/php/konbit-acme-8.2.sock;" in conf
    pools = _files(PhpFpm(), state)
    assert "user = acme" in pools["php/8.2/acme.conf"]
    assert "open_basedir] = /var/www/konbit/acme/" in pools["php/8.2/acme.conf"]
    assert "php/8.2/00-konbit.conf" in pools


def test_disabled_or_suspended_account_serves_the_suspended_page() -> None:
    for state in (_state(enabled=False), _state(account=AccountView(1, "acme", "suspended"))):
        conf = _files(Nginx(), state)["nginx/site-7.conf"]
        assert "return 503;" in conf and "/etc/konbit/live/web/suspended" in conf


def test_deleting_site_has_no_vhost_and_an_archive_step() -> None:
    state = _state(deleting=True)
    assert "nginx/site-7.conf" not in _files(Nginx(), state)
    steps = WebHome().steps(state, Facts.of({WEB_DIRS: "logdir"}, users={"acme": 1001}), set())
    assert [s.phase for s in steps] == ["after"]
    assert steps[0].argv[-2] == "/var/www/konbit/acme/www/www.acme.test"


def test_steps_only_when_needed() -> None:
    state = _state()
    fresh = WebHome().steps(state, Facts(), {"nginx/site-7.conf"})
    assert [s.description for s in fresh] == [
        "log and web directories",
        "unix users acme",
        "home and document roots",
    ]
    assert fresh[2].argv == ("perl", "-e", _ENSURE_DIRS)
    assert tuple((fresh[2].stdin or b"").decode().splitlines()) == (
        "U",
        "acme",
        "D",
        "/var/www/konbit/acme",
        "D",
        "/var/www/konbit/acme/www",
        "D",
        "/var/www/konbit/acme/www/www.acme.test",
        "P",
        "/var/www/konbit/acme/www/www.acme.test",
        "www.acme.test",
    )
    assert fresh[2].object_ids == (("site", 7),)
    settled = WebHome().steps(state, Facts.of({WEB_DIRS: "logdir"}, users={"acme": 1001}), set())
    assert settled == []


def test_apache2_vhost() -> None:
    conf = _files(Apache2(), _state(php="8.2"))["apache2/site-7.conf"]
    assert "ServerName www.acme.test" in conf and "ServerAlias acme.test" in conf
    assert 'SetHandler "proxy:unix:/run/php/konbit-acme-8.2.sock|fcgi://localhost"' in conf


def test_new_users_go_to_one_perl_process_on_stdin() -> None:
    steps = WebHome().steps(_state(), Facts.of({WEB_DIRS: "logdir"}), {"nginx/site-7.conf"})
    users = next(s for s in steps if s.description == "unix users acme")
    assert users.argv[:2] == ("perl", "-e") and users.stdin == b"acme /var/www/konbit/acme\n"


def test_nginx_open_file_limits() -> None:
    state = _state()
    files = _files(Nginx(), state)
    assert "worker_rlimit_nofile 8192;" in files["nginx/main/limits.conf"]
    boot = dict(Nginx().bootstrap(state.host))
    assert b"include /etc/konbit/live/nginx/main/*.conf;" in boot[NGINX_MAIN_INCLUDE]
    assert b"LimitNOFILE=524288" in boot[NGINX_SYSTEMD_DROPIN]
    many = dataclasses.replace(state, sites=state.sites * 10_000)
    assert "worker_rlimit_nofile 16384;" in _files(Nginx(), many)["nginx/main/limits.conf"]

    def steps(st: DesiredState, nginx: str, present: bool = True) -> list[str]:
        facts = Facts.of(
            {NGINX_LIMITS: nginx}, present=frozenset([NGINX_SYSTEMD_DROPIN] if present else [])
        )
        return [s.description for s in Nginx().steps(st, facts, set())]

    settled = "default-ulimit\nmaster-nofile 1024\nhard-nofile 524288"
    assert steps(state, settled) == []
    assert steps(state, "master-nofile 1024\nhard-nofile 524288") == ["nginx open-file limit"]
    assert steps(state, settled, present=False) == ["nginx open-file limit"]
    # A master started with too few descriptors for its sites is restarted, once: not when
    # a restart could give it no more (the host's hard limit).
    assert steps(many, settled) == ["restart nginx: its master may open 1024 files, 20256 needed"]
    assert steps(many, "default-ulimit\nmaster-nofile 20000\nhard-nofile 20000") == []
