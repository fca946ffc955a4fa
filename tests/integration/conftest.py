"""Real test hosts for the reconcile tests: one lab per session, hosts registered per test.

The panel database is SQLite here (the API suite covers both databases; the worker test
that needs PostgreSQL makes its own).
"""

from __future__ import annotations

import os
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.reconcile import Report, reconcile_host
from panel.hosts.sshkey import ensure_key, public_key
from panel.testhosts import Lab, TestHost
from provisioners.registry import load_plugins
from tests.conftest import World


@pytest.fixture(scope="session")
def db_url(tmp_path_factory: pytest.TempPathFactory) -> str:  # overrides the two-database one
    url = f"sqlite:///{tmp_path_factory.mktemp('idb') / 'konbit.sqlite3'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def panel_key(settings: Settings) -> str:
    return public_key(ensure_key(settings.ssh_key_path))


@pytest.fixture(scope="session")
def lab(panel_key: str) -> Iterator[Lab]:
    # Two test runs at once on one machine (a developer's and a helper's) each need their
    # own bridge: KONBIT_LAB=<n> picks bridge thkb<n>, subnet 10.77.<20+n>.
    n = int(os.environ.get("KONBIT_LAB", "0"))
    with Lab(bridge=f"thkb{n}", subnet=f"10.77.{20 + n}", veth_prefix=f"k{n}-") as lab:
        lab.ensure_base()
        yield lab


@pytest.fixture(scope="session")
def web1(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("web1", roles=["web"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host


@pytest.fixture(scope="session")
def web2(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("web2", roles=["web"], authorized_keys=[panel_key], web_server="apache2")
    host.wait_ready(60)
    return host


@pytest.fixture(scope="session")
def mail1(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("mail1", roles=["mail"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host


@pytest.fixture(scope="session")
def dns1(lab: Lab, panel_key: str) -> TestHost:
    """The DNS primary (the tests' DesiredState says which server is primary)."""
    host = lab.start("dns1", roles=["dns"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host


@pytest.fixture(scope="session")
def dns2(lab: Lab, panel_key: str) -> TestHost:
    """A DNS secondary."""
    host = lab.start("dns2", roles=["dns"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host


class Panel:
    """The API world plus the worker's reconcile, run in-process and synchronously."""

    def __init__(self, world: World, settings: Settings) -> None:
        self.world = world
        self.settings = settings
        self.staff = world.staff
        self.plugins = load_plugins()

    def register(self, host: TestHost, **extra: Any) -> dict[str, Any]:
        body = {
            "name": host.name,
            "address": host.address,
            "host_key": host.host_key,
            "roles": ["web"],
            **extra,
        }
        return self.staff.ok("POST", "/hosts", 201, json=body)  # type: ignore[no-any-return]

    def reconcile(self, host_id: int) -> Report:
        report = reconcile_host(self.world.db, self.settings, host_id, self.plugins, "test")
        assert report is not None
        return report


@pytest.fixture
def panel(world: World, settings: Settings) -> Panel:
    return Panel(world, settings)


def http_get(host: TestHost, name: str, path: str = "/") -> tuple[int, str]:
    """One GET to the host's address with a Host header, as a browser would send it."""
    request = urllib.request.Request(f"http://{host.address}{path}", headers={"Host": name})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode("utf-8", "replace")
    except OSError as exc:
        return 0, str(exc)


def wait_for(
    host: TestHost,
    name: str,
    status: int,
    contains: str = "",
    path: str = "/",
    timeout: float = 5.0,
) -> str:
    deadline = time.monotonic() + timeout
    while True:
        code, body = http_get(host, name, path)
        if code == status and contains in body:
            return body
        if time.monotonic() > deadline:
            raise AssertionError(f"GET {name}{path} on {host.name}: {code} {body[:300]!r}")
        time.sleep(0.1)


def read(host: TestHost, path: str) -> str:
    return Path(host.path(path)).read_text()


@pytest.fixture(scope="session")
def db1(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("db1", roles=["db"], authorized_keys=[panel_key])
    host.wait_ready(90)
    return host


@pytest.fixture(scope="session")
def db2(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("db2", roles=["db"], authorized_keys=[panel_key])
    host.wait_ready(90)
    return host


@pytest.fixture(scope="session")
def bk1(lab: Lab, panel_key: str) -> TestHost:
    host = lab.start("bk1", roles=["backup"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host
