"""The worker as it runs in production: separate processes, real hosts, real crashes."""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select

from panel.accounts import service as accounts
from panel.app import create_app
from panel.core.db import Database
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.models import Apply, Host
from panel.sites.models import Site
from panel.testhosts import Lab, TestHost
from tests.conftest import Api, postgres_database
from tests.integration.conftest import Panel, wait_for

pytestmark = pytest.mark.integration


class Workers:
    """``konbit worker`` processes on the test's database and data directory."""

    def __init__(self, settings: Settings, tmp: Path) -> None:
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("KONBIT_")}
        self.env.update(
            {
                "KONBIT_DATABASE_URL": settings.effective_database_url,
                "KONBIT_DATA_DIR": str(settings.data_dir),
                "KONBIT_RETRY_BASE_SECONDS": "0.5",
                "KONBIT_RECONCILE_LEASE_SECONDS": "6",
            }
        )
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self) -> subprocess.Popen[bytes]:
        log = open(self.tmp / f"worker-{len(self.procs)}.log", "wb")  # noqa: SIM115
        proc = subprocess.Popen(
            [sys.executable, "-m", "panel.cli", "worker", "--workers", "2"],
            env=self.env,
            stdout=log,
            stderr=log,
        )
        log.close()
        self.procs.append(proc)
        return proc

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in self.procs:
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture
def workers(settings: Settings, tmp_path: Path) -> Iterator[Workers]:
    w = Workers(settings, tmp_path)
    yield w
    w.stop()


def converged(db: Database, host_id: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with db.session() as s:
            host = s.get_one(Host, host_id)
            pending = s.scalar(
                select(Site.id).where(Site.host_id == host_id, Site.status != "active").limit(1)
            )
            if host.applied_generation >= host.desired_generation and pending is None:
                return
        time.sleep(0.1)
    with db.session() as s:
        applies = s.execute(
            select(Apply.id, Apply.result, Apply.error).where(Apply.host_id == host_id)
        ).all()
    raise AssertionError(f"host {host_id} did not converge: {applies}")


def test_a_new_site_goes_live_through_the_worker(
    panel: Panel, web1: TestHost, workers: Workers
) -> None:
    host = panel.register(web1)
    account = panel.world.account("kilo")
    panel.world.domain(account, "kilo.test")
    workers.start()
    started = time.monotonic()
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "kilo.test"}
    )
    wait_for(web1, "kilo.test", 200, "kilo.test", timeout=20)
    live_after = time.monotonic() - started
    converged(panel.world.db, host["id"])
    assert panel.staff.ok("GET", f"/sites/{site['id']}")["status"] == "active"
    assert live_after < 10, live_after


def test_a_stopped_host_is_retried_and_converges(
    panel: Panel, lab: Lab, panel_key: str, workers: Workers
) -> None:
    web = lab.start("web7", roles=["web"], authorized_keys=[panel_key])
    web.wait_ready(60)
    host = panel.register(web)
    web.stop(keep=True)
    account = panel.world.account("lima")
    panel.world.domain(account, "lima.test")
    panel.staff.ok("POST", "/sites", 201, json={"account_id": account["id"], "domain": "lima.test"})
    workers.start()
    deadline = time.monotonic() + 20
    while panel.staff.ok("GET", f"/hosts/{host['id']}")["health"] != "unreachable":
        assert time.monotonic() < deadline, "the worker never tried the stopped host"
        time.sleep(0.1)
    web = lab.start("web7", roles=["web"], authorized_keys=[panel_key], reuse=True)
    web.wait_ready(60)
    converged(panel.world.db, host["id"], timeout=30)
    wait_for(web, "lima.test", 200, "lima.test")
    web.stop()


def test_a_worker_killed_mid_reconcile_converges_on_restart(
    panel: Panel, web1: TestHost, workers: Workers
) -> None:
    host = panel.register(web1)
    sites = []
    for n in range(30):
        account = panel.world.account(f"mike{n}")
        panel.world.domain(account, f"mike{n}.test")
        for k in range(3):
            sites.append(
                panel.staff.ok(
                    "POST",
                    "/sites",
                    201,
                    json={"account_id": account["id"], "domain": f"s{k}.mike{n}.test"},
                )
            )
    first = workers.start()
    deadline = time.monotonic() + 30
    while True:
        with panel.world.db.session() as s:
            running = s.scalar(
                select(Apply.id).where(Apply.host_id == host["id"], Apply.result == "running")
            )
        if running is not None:
            break
        assert time.monotonic() < deadline, "no reconcile started"
        time.sleep(0.02)
    time.sleep(0.3)  # let it get into the host-side work
    first.kill()
    first.wait()
    workers.start()
    converged(panel.world.db, host["id"], timeout=60)
    with panel.world.db.session() as s:
        interrupted = s.get_one(Apply, running)
        assert interrupted.result in ("failed", "applied")
        if interrupted.result == "failed":
            assert "interrupted" in (interrupted.error or "")
    for site in (sites[0], sites[-1]):
        wait_for(web1, site["domain"], 200, site["domain"])


def test_two_workers_on_postgresql_share_hosts_one_at_a_time(
    lab: Lab, panel_key: str, settings: Settings, tmp_path: Path
) -> None:
    with postgres_database("konbit_w") as url:
        upgrade(url)
        _two_workers(lab, panel_key, url, settings, tmp_path)


def _two_workers(lab: Lab, panel_key: str, url: str, settings: Settings, tmp_path: Path) -> None:
    pg_settings = Settings(database_url=url, data_dir=settings.data_dir)
    db = Database(url)
    hosts: list[TestHost] = []
    workers = Workers(pg_settings, tmp_path)
    try:
        with TestClient(create_app(pg_settings, db)) as client:
            with db.session() as s:
                staff = accounts.create_user(s, email="ops@pg.test", is_staff=True)
                _, secret = accounts.create_token(
                    s, None, staff, name="t", scopes=["admin"], expires_at=None
                )
                s.commit()
            api = Api(client, secret, staff.id)
            host_ids: dict[str, int] = {}
            for i in range(3):
                h = lab.start(f"pg{i}", roles=["web"], authorized_keys=[panel_key])
                hosts.append(h)
            for h in hosts:
                h.wait_ready(60)
                host_ids[h.name] = api.ok(
                    "POST",
                    "/hosts",
                    201,
                    json={
                        "name": h.name,
                        "address": h.address,
                        "host_key": h.host_key,
                        "roles": ["web"],
                    },
                )["id"]
            workers.start()
            workers.start()
            created: list[dict[str, Any]] = []
            for n in range(6):
                account = api.ok(
                    "POST",
                    "/accounts",
                    201,
                    json={"slug": f"pgacct{n}", "name": "N", "email": "a@pg.test"},
                )
                api.ok(
                    "POST",
                    "/domains",
                    201,
                    json={"account_id": account["id"], "name": f"pg{n}.test"},
                )
                for k in range(4):
                    created.append(
                        api.ok(
                            "POST",
                            "/sites",
                            201,
                            json={"account_id": account["id"], "domain": f"s{k}.pg{n}.test"},
                        )
                    )
                    time.sleep(0.05)
            # More changes while the workers run: nothing may be lost.
            disabled = created[::5]
            for site in disabled:
                api.ok("PATCH", f"/sites/{site['id']}", json={"enabled": False})
            for host_id in host_ids.values():
                converged(db, host_id, timeout=60)
            by_id = {h.name: h for h in hosts}
            names = {v: k for k, v in host_ids.items()}
            for site in created:
                h = by_id[names[site["host_id"]]]
                want = 503 if site in disabled else 200
                wait_for(h, site["domain"], want, "suspended" if want == 503 else site["domain"])
            with db.session() as s:
                rows = s.execute(
                    select(
                        Apply.host_id, Apply.started_at, Apply.finished_at, Apply.worker
                    ).order_by(Apply.host_id, Apply.started_at)
                ).all()
            processes = {r.worker.split("/")[0] for r in rows}
            assert len(processes) == 2, f"both workers should have worked: {processes}"
            for host_id in host_ids.values():
                mine = [r for r in rows if r.host_id == host_id]
                assert mine
                for before, after in itertools.pairwise(mine):
                    assert before.finished_at is not None
                    assert before.finished_at <= after.started_at, (before, after)
    finally:
        workers.stop()
        for h in hosts:
            h.stop()
        db.engine.dispose()


def test_forced_reconcile_repairs_a_hand_edit(
    panel: Panel, web1: TestHost, workers: Workers
) -> None:
    host = panel.register(web1)
    account = panel.world.account("november")
    panel.world.domain(account, "november.test")
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "november.test"}
    )
    workers.start()
    converged(panel.world.db, host["id"])
    vhost = f"/etc/konbit/live/nginx/site-{site['id']}.conf"
    web1.exec(["sh", "-c", 'echo "# drift" >> "$1"', "x", vhost], check=True)
    assert panel.staff.ok("GET", f"/hosts/{host['id']}/plan")["noop"] is False
    panel.staff.ok("POST", f"/hosts/{host['id']}/reconcile", 202)
    converged(panel.world.db, host["id"])
    assert "# drift" not in Path(web1.path(vhost)).read_text()
