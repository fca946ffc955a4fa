"""Members' cron jobs on a real web host: cron runs a job at its time as the account's
user, "run now" runs it at once, its runs are read back, a disabled job is not in the
crontab and a deleted one leaves nothing behind.

Cron starts jobs once a minute: this is the only test in the suite that waits for it.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import pytest

from panel.tasks.run.dispatch import run_task
from panel.testhosts import Lab, TestHost
from tests.integration.conftest import Panel, read
from tests.web.conftest import WebWorld

pytestmark = pytest.mark.integration

HOME = "/var/www/konbit/acme"
TAB = "/etc/konbit/live/cron/konbit"


@pytest.fixture(scope="module")
def cron1(lab: Lab, panel_key: str) -> TestHost:
    """A web host of its own: the one wait for cron's minute stays out of the others'."""
    host = lab.start("cron1", roles=["web"], authorized_keys=[panel_key])
    host.wait_ready(60)
    return host


def _job(
    panel: Panel, account: dict[str, Any], site: dict[str, Any], name: str, **spec: Any
) -> Any:
    body = {"account_id": account["id"], "site_id": site["id"], "name": name, "spec": spec}
    return panel.staff.ok("POST", "/objects/cron_job", 201, json=body)


def test_a_cron_job_runs_on_time_and_now_as_the_account_and_goes_when_deleted(
    panel: Panel, cron1: TestHost, app: Any
) -> None:
    started = time.monotonic()
    host = panel.register(cron1)
    acme = panel.world.account("acme")
    panel.world.domain(acme, "acme.test")
    site = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": acme["id"], "domain": "acme.test"}
    )
    bad = panel.staff.request(
        "POST",
        "/objects/cron_job",
        json={
            "account_id": acme["id"],
            "site_id": site["id"],
            "name": "bad",
            "spec": {"schedule": "* * * * *", "command": "true\n* * * * * root id"},
        },
    )
    assert bad.status_code == 422 and bad.json()["errors"][0]["field"] == "spec.command"
    # Every minute: writes the time (% is a plain percent sign) and who ran it.
    ticking = _job(
        panel,
        acme,
        site,
        "ticking",
        schedule="* * * * *",
        command="date +%s > cron-ticked.txt; id -un >> cron-ticked.txt; pwd; echo $HOME",
    )
    manual = _job(
        panel,
        acme,
        site,
        "manual",
        schedule="@daily",
        enabled=False,
        output="mail",
        mail_to="ops@acme.test",
        command="echo ran > run-now.txt; echo hello from run-now; echo oops >&2; exit 3",
    )
    slow = _job(
        panel, acme, site, "slow", schedule="@daily", timeout_seconds=10, command="sleep 60"
    )
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    for job in (ticking, manual, slow):
        assert panel.staff.ok("GET", f"/objects/cron_job/{job['id']}")["status"] == "active"

    link = cron1.path("/etc/cron.d/konbit")
    assert os.readlink(link) == TAB
    tab = read(cron1, TAB)
    assert f"* * * * * root /etc/konbit/live/cron/run {ticking['id']}\n" in tab
    assert f"cron/run {manual['id']}" not in tab  # disabled: not in the crontab
    assert "date" not in tab  # commands stay in their job files (0600)
    assert (
        Path(cron1.path(f"/etc/konbit/live/cron/jobs/{ticking['id']}")).stat().st_mode & 0o777
        == 0o600
    )

    # Run now: at once, as the account's user, in its home; the task shows the output
    # and fails with the job's exit code.
    task = panel.staff.ok("POST", f"/objects/cron_job/{manual['id']}/run", 202)
    t0 = time.monotonic()
    assert run_task(panel.world.db, panel.settings, task["id"], panel.plugins) == "failed"
    run_seconds = time.monotonic() - t0
    done = panel.staff.ok("GET", f"/tasks/{task['id']}")
    assert "hello from run-now" in done["log"] and "oops" in done["log"]
    assert "exited with code 3" in done["error"]
    assert done["result"]["run"]["exit_code"] == 3 and done["result"]["run"]["how"] == "now"
    made = Path(cron1.path(f"{HOME}/run-now.txt"))
    uid = int(cron1.exec(["id", "-u", "acme"], check=True).stdout)
    assert made.read_text() == "ran\n" and made.stat().st_uid == uid
    t0 = time.monotonic()
    runs = panel.staff.ok("GET", f"/objects/cron_job/{manual['id']}/runs")["items"]
    runs_seconds = time.monotonic() - t0
    assert [(r["how"], r["exit_code"]) for r in runs] == [("now", 3)]
    assert "hello from run-now" in runs[0]["output"] and runs[0]["seconds"] < 5
    assert runs[0]["notes"] == ["output mailed to ops@acme.test"]  # the host's sendmail took it
    # The job's "Last runs" page shows the same run, read from the host.
    web = WebWorld(panel.world, panel.world.db, app)
    web.member(acme, "alice@acme.test", "viewer")
    browser = web.browser()
    browser.login("alice@acme.test")
    page = browser.get(f"/objects/cron_job/{manual['id']}/runs")
    assert page.status_code == 200 and "<td>run now</td>" in page.text
    assert "hello from run-now" in page.text and "output mailed to ops@acme.test" in page.text

    # On its time: cron starts it at the next minute (the one wait of the suite).
    ticked = Path(cron1.path(f"{HOME}/cron-ticked.txt"))
    t0 = time.monotonic()
    # Meanwhile, a run past its time limit is stopped (10 s) and says so.
    slow_task = panel.staff.ok("POST", f"/objects/cron_job/{slow['id']}/run", 202)
    assert run_task(panel.world.db, panel.settings, slow_task["id"], panel.plugins) == "failed"
    stopped = panel.staff.ok("GET", f"/tasks/{slow_task['id']}")["result"]["run"]
    assert stopped["exit_code"] == 124 and 10 <= stopped["seconds"] < 15
    assert stopped["notes"] == ["stopped after 10 seconds (time limit)"]
    while not ticked.exists() or len(ticked.read_text().split()) < 2:
        assert time.monotonic() - t0 < 75, "cron did not run the job within 75 s"
        time.sleep(0.5)
    waited = time.monotonic() - t0
    assert ticked.stat().st_uid == uid and ticked.read_text().split()[1] == "acme"
    deadline = time.monotonic() + 10
    while not (runs := panel.staff.ok("GET", f"/objects/cron_job/{ticking['id']}/runs")["items"]):
        assert time.monotonic() < deadline, "the run of cron left no record"
        time.sleep(0.5)
    assert runs[0]["how"] == "cron" and runs[0]["exit_code"] == 0
    assert runs[0]["output"] == f"{HOME}\n{HOME}\n"  # cwd and HOME: the account's home

    # Deleted: its line and its records go; with the last job, the link goes too.
    panel.staff.ok("DELETE", f"/objects/cron_job/{ticking['id']}", 202)
    assert panel.reconcile(host["id"]).result == "applied"
    assert f"cron/run {ticking['id']}" not in read(cron1, TAB)
    assert not Path(cron1.path(f"/var/lib/konbit/cron/{ticking['id']}")).exists()
    assert panel.staff.request("GET", f"/objects/cron_job/{ticking['id']}").status_code == 404
    panel.staff.ok("DELETE", f"/objects/cron_job/{manual['id']}", 202)
    panel.staff.ok("DELETE", f"/objects/cron_job/{slow['id']}", 202)
    assert panel.reconcile(host["id"]).result == "applied"
    assert not os.path.lexists(link)
    assert not Path(cron1.path("/etc/konbit/live/cron")).exists()
    assert panel.reconcile(host["id"]).result == "noop"
    print(
        f"\ncron: run-now task {run_seconds:.2f} s, GET runs {runs_seconds:.2f} s, "
        f"waited {waited:.1f} s for cron, test {time.monotonic() - started:.1f} s"
    )
