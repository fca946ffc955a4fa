"""HTTPS in the web host files: TLS server blocks, redirects, challenges, key steps."""

from __future__ import annotations

import datetime as dt

from panel.sites.certs import covers, renew_at
from provisioners.api import AccountView, DesiredState, Facts, HostView, SiteView, TlsView
from provisioners.web import APACHE_ENABLED, WEB_DIRS, Apache2, Nginx, WebHome

CHAIN = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = b"-----BEGIN PRIVATE KEY-----\nsecret\n-----END PRIVATE KEY-----\n"


def _state(server: str = "nginx", **site: object) -> DesiredState:
    acme = AccountView(1, "acme", "active")
    values: dict[str, object] = {
        "id": 7,
        "version": 1,
        "account": acme,
        "domain": "www.acme.test",
        "aliases": ("acme.test",),
        "document_root": "www/www.acme.test",
        "php": None,
        "https": "acme",
        "enabled": True,
        "deleting": False,
        "tls": TlsView(CHAIN, "acme-1.key"),
        **site,
    }
    host = HostView(1, "web1", ("web",), {"web_server": server})
    return DesiredState(host=host, accounts=(acme,), sites=(SiteView(**values),))  # type: ignore[arg-type]


def _files(plugin: object, state: DesiredState) -> dict[str, str]:
    return {f.path: f.content.decode() for f in plugin.render(state)}  # type: ignore[attr-defined]


def test_nginx_serves_tls_and_redirects_but_answers_challenges() -> None:
    files = _files(Nginx(), _state())
    conf = files["nginx/site-7.conf"]
    assert files["nginx/tls/site-7.pem"] == CHAIN
    assert "listen 443 ssl http2;" in conf
    assert "ssl_certificate /etc/konbit/live/nginx/tls/site-7.pem;" in conf
    assert "ssl_certificate_key /etc/konbit/private/site-7/acme-1.key;" in conf
    assert "ssl_protocols TLSv1.2 TLSv1.3;" in conf
    http = conf.split("listen 443")[0]
    assert "location ^~ /.well-known/acme-challenge/" in http
    assert "return 301 https://$host$request_uri;" in http and "root " not in http
    assert "PRIVATE" not in "".join(files.values())

    plain = _files(Nginx(), _state(https_redirect=False))["nginx/site-7.conf"]
    assert "return 301" not in plain and plain.count("root /var/www") == 2

    off = _files(Nginx(), _state(https="off", tls=None))
    assert "listen 443" not in off["nginx/site-7.conf"] and "nginx/tls/site-7.pem" not in off
    assert "acme-challenge" in off["nginx/site-7.conf"]


def test_apache2_tls_vhost_and_modules() -> None:
    state = _state("apache2")
    files = _files(Apache2(), state)
    conf = files["apache2/site-7.conf"]
    assert "<VirtualHost *:443>" in conf and "SSLEngine on" in conf
    assert "SSLCertificateKeyFile /etc/konbit/private/site-7/acme-1.key" in conf
    assert 'Redirect 301 "https://%{HTTP_HOST}%{REQUEST_URI}"' in conf
    assert "SSLProtocol -all +TLSv1.2 +TLSv1.3" in files["apache2/00-konbit.conf"]
    steps = Apache2().steps(state, Facts.of({APACHE_ENABLED: "proxy_fcgi\nsetenvif"}), set())
    assert [s.argv for s in steps] == [("a2enmod", "-q", "ssl", "http2")]
    done = Facts.of({APACHE_ENABLED: "proxy_fcgi\nsetenvif\nssl\nhttp2"})
    assert Apache2().steps(state, done, set()) == []


def test_an_uploaded_key_goes_to_the_host_on_stdin_once() -> None:
    state = _state(https="custom", tls=TlsView(CHAIN, "custom-ab.key", KEY))
    steps = [s for s in WebHome().steps(state, Facts.of({WEB_DIRS: "logdir"}), set())]
    (step,) = [s for s in steps if s.stdin == KEY]
    assert "secret" not in step.description and "secret" not in " ".join(step.argv)
    assert step.argv[-2:] == ("/etc/konbit/private/site-7", "custom-ab.key")
    there = Facts.of({WEB_DIRS: "logdir\nkey site-7/custom-ab.key"})
    assert not [s for s in WebHome().steps(state, there, set()) if s.stdin == KEY]
    assert "secret" not in repr(state)


def test_names_and_renewal_time() -> None:
    assert covers(["*.acme.test"], "www.acme.test") and not covers(["*.acme.test"], "acme.test")
    assert not covers(["*.acme.test"], "a.b.acme.test")
    start = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    assert renew_at(start, start + dt.timedelta(days=90)) == start + dt.timedelta(days=60)
