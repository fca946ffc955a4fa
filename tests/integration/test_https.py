"""HTTPS end to end: Debian's pebble (a real ACME server) validates HTTP-01 on the test
hosts' port 80, names resolved by pebble-challtestsrv's DNS; browsers are played by an
``ssl`` client that trusts only pebble's root (or the test CA) and sends the site's SNI."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import ssl
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from cryptography import x509

from panel.core.settings import Settings
from panel.sites import acme
from panel.testhosts import Lab, TestHost
from panel.testhosts.build import die_with_parent
from tests.certs import issue, make_ca
from tests.integration.conftest import Panel, http_get, wait_for

pytestmark = pytest.mark.integration


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Pebble:
    directory: str
    ca_file: Path  # verifies pebble's own HTTPS (ACME and management)
    management: str
    dns_management: str
    nowhere: str  # where unknown names resolve: an address with no host

    def root(self) -> str:
        """Pebble's issuing root, regenerated at each start."""
        ctx = ssl.create_default_context(cafile=str(self.ca_file))
        with urllib.request.urlopen(f"{self.management}/roots/0", context=ctx) as r:
            return str(r.read().decode())

    def resolve(self, name: str, address: str) -> None:
        self._dns("add-a", {"host": name, "addresses": [address]})

    def forget(self, name: str) -> None:
        self._dns("clear-a", {"host": name})

    def _dns(self, verb: str, body: dict[str, object]) -> None:
        request = urllib.request.Request(
            f"{self.dns_management}/{verb}", data=json.dumps(body).encode(), method="POST"
        )
        with urllib.request.urlopen(request, timeout=5) as r:
            assert r.status == 200


@pytest.fixture(scope="session")
def pebble(lab: Lab, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pebble]:
    """pebble and pebble-challtestsrv on the loopback, for this session only."""
    with start_pebble(lab, tmp_path_factory.mktemp("pebble")) as started:
        yield started


@contextlib.contextmanager
def start_pebble(lab: Lab, work: Path, dnsserver: str | None = None) -> Iterator[Pebble]:
    """pebble, resolving names with pebble-challtestsrv (names the test sets), or with
    ``dnsserver`` (``address:port``: the panel's own DNS servers, for DNS-01)."""
    for tool in ("pebble", "pebble-challtestsrv"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: `apt-get install pebble` (./dev installs it)")
    ca = make_ca("Konbit pebble TLS")
    served = issue(ca, ["localhost"], ips=["127.0.0.1"], days=2)
    (work / "ca.pem").write_text(ca.cert_pem)
    (work / "cert.pem").write_text(served.cert_pem)
    (work / "key.pem").write_text(served.key_pem)
    acme_port, mgmt_port, dns_port, dns_mgmt = (_free_port() for _ in range(4))
    (work / "pebble.json").write_text(
        json.dumps(
            {
                "pebble": {
                    "listenAddress": f"127.0.0.1:{acme_port}",
                    "managementListenAddress": f"127.0.0.1:{mgmt_port}",
                    "certificate": str(work / "cert.pem"),
                    "privateKey": str(work / "key.pem"),
                    "httpPort": 80,  # HTTP-01 on the web host's own port 80
                    "tlsPort": 443,
                    "ocspResponderURL": "",
                    "externalAccountBindingRequired": False,
                }
            }
        )
    )
    nowhere = f"{lab.subnet}.250"
    env = {
        **os.environ,
        "PEBBLE_VA_NOSLEEP": "1",
        "PEBBLE_WFE_NONCEREJECT": "0",
        "PEBBLE_AUTHZREUSE": "0",  # every order validates again (a renewal proves reach)
    }
    dns_log = (work / "challtestsrv.log").open("wb")
    pebble_log = (work / "pebble.log").open("wb")
    dns = None if dnsserver else subprocess.Popen(
        [
            "pebble-challtestsrv",
            "-dns01",
            f"127.0.0.1:{dns_port}",
            "-http01",
            "",
            "-https01",
            "",
            "-tlsalpn01",
            "",
            "-management",
            f"127.0.0.1:{dns_mgmt}",
            "-defaultIPv4",
            nowhere,
            "-defaultIPv6",
            "",
        ],
        stdout=dns_log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(),  # noqa: PLW1509
    )
    server = subprocess.Popen(
        [
            "pebble",
            "-config",
            str(work / "pebble.json"),
            "-dnsserver",
            dnsserver or f"127.0.0.1:{dns_port}",
            "-strict=false",
        ],
        env=env,
        stdout=pebble_log,
        stderr=subprocess.STDOUT,
        preexec_fn=die_with_parent(),  # noqa: PLW1509
    )
    try:
        ctx = ssl.create_default_context(cafile=str(work / "ca.pem"))
        deadline = time.monotonic() + 15
        while True:
            try:
                with urllib.request.urlopen(
                    f"https://127.0.0.1:{acme_port}/dir", context=ctx, timeout=2
                ):
                    pass
                if dns is not None:
                    with urllib.request.urlopen(f"http://127.0.0.1:{dns_mgmt}/", timeout=2):
                        pass
                break
            except urllib.error.HTTPError:  # the management root answers 404: it is up
                break
            except OSError:
                if time.monotonic() > deadline:
                    logs = (work / "pebble.log").read_text()[-2000:]
                    raise AssertionError(f"pebble did not start: {logs}") from None
                time.sleep(0.1)
        yield Pebble(
            directory=f"https://127.0.0.1:{acme_port}/dir",
            ca_file=work / "ca.pem",
            management=f"https://127.0.0.1:{mgmt_port}",
            dns_management=f"http://127.0.0.1:{dns_mgmt}",
            nowhere=nowhere,
        )
    finally:
        procs = [server] if dns is None else [server, dns]
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        dns_log.close()
        pebble_log.close()


@pytest.fixture
def acme_settings(settings: Settings, pebble: Pebble) -> Settings:
    return settings.model_copy(
        update={
            "acme_directory": pebble.directory,
            "acme_ca_bundle": pebble.ca_file,
            "acme_timeout_seconds": 30.0,
        }
    )


@dataclass
class Served:
    status: int
    body: str
    cert: x509.Certificate
    alpn: str | None


def https_get(host: TestHost, name: str, cadata: str, path: str = "/") -> Served:
    """One HTTPS GET to the host's address with the site's name as SNI and Host, trusting
    only ``cadata``: what a browser pointed at this host would get."""
    ctx = ssl.create_default_context(cadata=cadata)
    ctx.set_alpn_protocols(["h2", "http/1.1"])
    with (
        socket.create_connection((host.address, 443), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        alpn = tls.selected_alpn_protocol()
        der = tls.getpeercert(binary_form=True)
    ctx = ssl.create_default_context(cadata=cadata)
    with (
        socket.create_connection((host.address, 443), timeout=5) as raw,
        ctx.wrap_socket(raw, server_hostname=name) as tls,
    ):
        tls.sendall(f"GET {path} HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := tls.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    assert der is not None
    cert = x509.load_der_x509_certificate(der)
    return Served(status, body.decode("utf-8", "replace"), cert, alpn)


def _serial(cert: x509.Certificate) -> str:
    return format(cert.serial_number, "x")


def wait_serial(host: TestHost, name: str, cadata: str, serial: str, timeout: float = 5) -> None:
    """The served certificate becomes ``serial`` (an old nginx worker may still answer a
    connection or two right after the reload returns)."""
    deadline = time.monotonic() + timeout
    while (got := _serial(https_get(host, name, cadata).cert)) != serial:
        if time.monotonic() > deadline:
            raise AssertionError(f"{name} on {host.name} serves {got}, not {serial}")
        time.sleep(0.05)


def _redirect(host: TestHost, name: str, path: str = "/") -> tuple[int, str]:
    """Status and Location of a plain-HTTP request (redirects not followed)."""
    import http.client

    conn = http.client.HTTPConnection(host.address, 80, timeout=5)
    try:
        conn.request("GET", path, headers={"Host": name})
        response = conn.getresponse()
        return response.status, response.getheader("Location") or ""
    finally:
        conn.close()


def wait_redirect(host: TestHost, name: str, path: str, location: str, timeout: float = 5) -> None:
    deadline = time.monotonic() + timeout
    while (got := _redirect(host, name, path)) != (301, location):
        if time.monotonic() > deadline:
            raise AssertionError(f"http://{name}{path} on {host.name}: {got}")
        time.sleep(0.05)


def _site(panel: Panel, slug: str, domain: str, **extra: object) -> dict[str, object]:
    account = panel.world.account(slug)
    panel.world.domain(account, domain.split(".", 1)[1] if domain.count(".") > 1 else domain)
    return panel.staff.ok(  # type: ignore[no-any-return]
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": domain, **extra}
    )


def _issue(panel: Panel, settings: Settings, host_id: int) -> list[acme.Outcome]:
    outcomes = acme.run_host(panel.world.db, settings, host_id, plugins=panel.plugins)
    report = panel.reconcile(host_id)
    assert report.result in ("applied", "noop"), report.error
    return outcomes


def test_acme_certificate_is_issued_served_renewed_and_kept_on_failure(
    panel: Panel, web1: TestHost, pebble: Pebble, acme_settings: Settings
) -> None:
    host = panel.register(web1)
    site = _site(panel, "tlsa", "www.tlsa.test", aliases=["tlsa.test"], https="acme")
    for name in ("www.tlsa.test", "tlsa.test"):
        pebble.resolve(name, web1.address)
    assert panel.reconcile(host["id"]).result == "applied"
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["status"] == "active" and got["https_status"] == "pending"
    wait_for(web1, "www.tlsa.test", 200, "www.tlsa.test")

    started = time.monotonic()
    outcomes = _issue(panel, acme_settings, host["id"])
    issued_in = time.monotonic() - started
    assert [o.ok for o in outcomes] == [True], outcomes
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["status"] == "active", got
    assert got["https_status"] == "active" and got["https_reason"] is None
    cert = got["certificate"]
    assert cert["source"] == "acme" and sorted(cert["names"]) == ["tlsa.test", "www.tlsa.test"]
    root = pebble.root()
    for name in ("www.tlsa.test", "tlsa.test"):
        wait_serial(web1, name, root, cert["serial"])
        served = https_get(web1, name, root)
        assert served.status == 200 and "www.tlsa.test" in served.body
    assert served.alpn == "h2"
    # HTTP goes to HTTPS, except the ACME challenges.
    wait_redirect(web1, "tlsa.test", "/a?b=1", "https://tlsa.test/a?b=1")
    Path(web1.path("/var/lib/konbit/acme-challenge/probe-token-1234567")).write_text("ok")
    assert http_get(web1, "tlsa.test", "/.well-known/acme-challenge/probe-token-1234567") == (
        200,
        "ok",
    )
    # The key was made on the host, readable by root alone; the panel has none of it.
    keys = list(Path(web1.path(f"/etc/konbit/private/site-{site['id']}")).iterdir())
    assert len(keys) == 1 and keys[0].stat().st_mode & 0o777 == 0o600
    detail = panel.staff.get(f"/sites/{site['id']}/certificate").text
    assert "PRIVATE KEY" not in detail and "BEGIN CERTIFICATE" in detail
    with panel.world.db.session() as session:
        from panel.sites.models import SiteCertificate

        row = session.get_one(SiteCertificate, site["id"])
        assert row.key_sealed is None and "PRIVATE" not in (row.chain_pem or "")
        assert row.renew_at is not None and row.not_before is not None
        assert row.not_before < row.renew_at < row.not_after  # type: ignore[operator]
    assert _due(panel) == []

    # A forced renewal: a new certificate (new serial) replaces the old one.
    panel.staff.ok("POST", f"/sites/{site['id']}/certificate/renew", 202)
    started = time.monotonic()
    outcomes = _issue(panel, acme_settings, host["id"])
    renewed_in = time.monotonic() - started
    assert [o.ok for o in outcomes] == [True], outcomes
    renewed = panel.staff.ok("GET", f"/sites/{site['id']}")["certificate"]
    assert renewed["serial"] != cert["serial"]
    wait_serial(web1, "www.tlsa.test", root, renewed["serial"])

    # A renewal that cannot be validated keeps the served certificate and says why.
    pebble.forget("tlsa.test")
    panel.staff.ok("POST", f"/sites/{site['id']}/certificate/renew", 202)
    outcomes = _issue(panel, acme_settings, host["id"])
    assert [o.ok for o in outcomes] == [False]
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["status"] == "active" and got["https_status"] == "failed"
    assert "tlsa.test" in got["https_reason"] and "still serving" in got["https_reason"]
    assert got["certificate"]["serial"] == renewed["serial"]
    assert _serial(https_get(web1, "www.tlsa.test", root).cert) == renewed["serial"]
    assert _due(panel) == []  # backing off
    # Turning the redirect off serves the site on both ports.
    panel.staff.ok("PATCH", f"/sites/{site['id']}", json={"https_redirect": False})
    assert panel.reconcile(host["id"]).result == "applied"
    wait_for(web1, "www.tlsa.test", 200, "www.tlsa.test")
    print(f"\nACME with pebble: issued in {issued_in:.2f} s, renewed in {renewed_in:.2f} s")


def test_unreachable_challenge_leaves_the_site_on_http_with_a_reason(
    panel: Panel, web1: TestHost, pebble: Pebble, acme_settings: Settings
) -> None:
    host = panel.register(web1)
    site = _site(panel, "tlsb", "tlsb.test", https="acme")  # resolves to nowhere
    assert panel.reconcile(host["id"]).result == "applied"
    keys = Path(web1.path(f"/etc/konbit/private/site-{site['id']}"))
    before = set(keys.iterdir()) if keys.exists() else set()  # site ids repeat across tests
    outcomes = _issue(panel, acme_settings, host["id"])
    assert [o.ok for o in outcomes] == [False]
    assert (set(keys.iterdir()) if keys.exists() else set()) == before  # the new key went
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["status"] == "active" and got["https_status"] == "failed", got
    reason = got["https_reason"]
    assert "could not fetch the HTTP-01 challenge" in reason and "tlsb.test" in reason, reason
    assert pebble.nowhere in reason or "connect" in reason.lower() or "timeout" in reason.lower()
    assert "attempt 1, next at" in reason
    print(f"\nreason: {reason}")
    assert got["certificate"] is None
    wait_for(web1, "tlsb.test", 200, "tlsb.test")  # still served over HTTP
    assert _due(panel) == []  # retried after back-off


def test_apache2_serves_an_acme_certificate(
    panel: Panel, web2: TestHost, pebble: Pebble, acme_settings: Settings
) -> None:
    host = panel.register(web2, settings={"web_server": "apache2"})
    site = _site(panel, "tlsc", "tlsc.test", https="acme")
    pebble.resolve("tlsc.test", web2.address)
    assert panel.reconcile(host["id"]).result == "applied"
    outcomes = _issue(panel, acme_settings, host["id"])
    assert [o.ok for o in outcomes] == [True], outcomes
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["https_status"] == "active" and got["status"] == "active", got
    wait_serial(web2, "tlsc.test", pebble.root(), got["certificate"]["serial"])
    served = https_get(web2, "tlsc.test", pebble.root())
    assert served.status == 200 and "tlsc.test" in served.body
    assert served.alpn == "h2"
    wait_redirect(web2, "tlsc.test", "/x", "https://tlsc.test/x")


def test_a_custom_certificate_is_served_and_bad_ones_are_refused(
    panel: Panel, web1: TestHost
) -> None:
    host = panel.register(web1)
    site = _site(panel, "tlsd", "tlsd.test", aliases=["www.tlsd.test"])
    ca = make_ca("Konbit member CA")
    inter = issue(ca, [], ca_cert=True)
    leaf = issue(inter, ["tlsd.test", "www.tlsd.test"])
    other = issue(inter, ["tlsd.test", "www.tlsd.test"])
    path = f"/sites/{site['id']}/certificate"
    bad = panel.staff.request(
        "PUT",
        path,
        json={"certificate": leaf.cert_pem + inter.cert_pem, "private_key": other.key_pem},
    )
    assert bad.status_code == 422 and bad.headers["content-type"] == "application/problem+json"
    assert [e["field"] for e in bad.json()["errors"]] == ["private_key"]
    old = issue(inter, ["tlsd.test", "www.tlsd.test"], days=10, start=_days_ago(20))
    bad = panel.staff.request(
        "PUT", path, json={"certificate": old.cert_pem + inter.cert_pem, "private_key": old.key_pem}
    )
    assert bad.status_code == 422 and "expired" in bad.json()["errors"][0]["reason"]
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["https"] == "off"

    good = {"certificate": leaf.cert_pem + inter.cert_pem, "private_key": leaf.key_pem}
    out = panel.staff.ok("PUT", path, json=good)
    assert out["https"] == "custom" and "PRIVATE KEY" not in json.dumps(out)
    assert out["certificate"]["serial"] == _serial(leaf.cert)
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    apply = panel.staff.ok("GET", f"/applies/{report.apply_id}")
    assert "PRIVATE KEY" not in apply["diff"] + apply["log"]
    for name in ("tlsd.test", "www.tlsd.test"):
        wait_serial(web1, name, ca.cert_pem, _serial(leaf.cert))
        assert https_get(web1, name, ca.cert_pem).status == 200
    key_file = Path(web1.path(f"/etc/konbit/private/site-{site['id']}")).glob("custom-*.key")
    (only,) = list(key_file)
    assert only.stat().st_mode & 0o777 == 0o600 and only.read_text() == leaf.key_pem
    assert panel.reconcile(host["id"]).result == "noop"  # the key is there: no step again


def _days_ago(days: int) -> dt.datetime:
    return dt.datetime.now(dt.UTC) - dt.timedelta(days=days)


def _due(panel: Panel) -> list[tuple[int, int]]:
    with panel.world.db.session() as session:
        return acme.due_sites(session)
