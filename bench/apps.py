"""Benchmark: applications (issue 15): WordPress install click-to-login, and an update of
50 sites of one platform against the floor of the same host work done by hand.

Real test hosts (web1 nginx + PHP-FPM, db1 MariaDB, bk1 the backup store) and the panel
as subprocesses (``konbit init``, ``konbit serve``, ``konbit worker``; SQLite), hosts
registered through the API. A platform is built from Debian's wordpress package (the
``.deb`` files cached in ``KONBIT_DEB_CACHE``, else /var/tmp/konbit-bench-apps-debs),
and a second one derived from it by a real code change (``index.php`` sends a header:
``_derived`` of tests/integration/test_apps.py). ``--sites`` accounts get one PHP site
each (untimed).

* Install click-to-login, ``--installs`` times (one after the other, the worker idle in
  between): POST /sites/{id}/app, poll the task every 50 ms as the member's page does,
  then WordPress's login form over HTTP with the admin password the POST answered; the
  first install carries the platform's upload to web1 and is reported apart. Split:
  POST, queue pickup, the task (its steps from its log), task end -> login.
* The other sites are installed through the worker (untimed), then the worker stops.
* Floor: the same work by hand in the same run, over one SSH connection per host (the
  relay and commands of ``panel.tasks.run.backup`` and the plugins' scripts): the build
  put on web1 once, then per site ``tar czf`` and ``mariadb-dump | gzip`` into files on
  bk1, the ``.platform`` switch (LINK) and WordPress's updater. Undone after (untimed:
  sites linked back, the build and the floor's backups removed).
* The update: POST /platforms/{id}/update, then the task run to its end in this process
  (``run_task``, what the worker runs) with every SSH connection and exec counted and
  its parts timed; sshd's own count of logins (the hosts' syslog) beside it.  Then each
  site must serve the new build and let its admin log in (untimed).

    .venv/bin/python bench/apps.py --quick              # 3 installs, 5 sites (~1 min)
    .venv/bin/python bench/apps.py                      # 5 installs, 50 sites (~4.5 min)
    .venv/bin/python bench/apps.py --installs 10 --sites 20 --profile

Runs as root (test hosts). ``KONBIT_LAB=<n>``: bridge thkb<n>, 10.77.<20+n>.0/24 (as the
integration tests); unset: bridge thba0, 10.77.48.0/24. Figures only, no targets; exit
status 1 when a task, a login or a check fails. The load average is printed at start
and end: the machine is small and shared.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

from apps_click import Click, print_clicks, run_clicks
from apps_update import Floor, Labels, UpdateRun, cpu_rows, print_update, run_floor, run_update
from apps_update import undo_floor as undo
from apps_world import (
    DEFAULT_DEB_CACHE,
    Bystander,
    LongApi,
    PanelProcs,
    Site,
    derived,
    fill_database_names,
    install_rest,
    keep_logs,
    lab_for_bench,
    make_sites,
    register_all,
    serves,
    ssh_accepted,
    start_hosts,
    wait_tasks,
    wp_login,
)
from common import load_average, log

from panel.hosts.sshkey import public_key
from provisioners.registry import load_plugins
from provisioners.transport import Target, load_client_key

BUILD_HEADER = ("X-Konbit-Build", "k2")


def code_version() -> str:
    """The commit measured, and any uncommitted change to the code the bench runs."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
        return done.stdout

    dirty = git("status", "--short", "panel/apps", "panel/tasks", "provisioners")
    changed = " ".join(line[3:] for line in dirty.splitlines())
    return git("log", "-1", "--format=%h %s").strip()[:72] + (
        f" + uncommitted: {changed}" if changed else ""
    )


def check_sites(address: str, sites: list[Site], header: tuple[str, str] | None) -> list[str]:
    """Every site serves its page (with ``header``) and its admin logs in."""
    bad = [why for s in sites if (why := serves(address, s, header))]
    bad += [f"{s.domain}: login refused" for s in sites
            if not wp_login(address, s.domain, "admin", s.password)]  # fmt: skip
    return bad


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--sites", type=int, default=50, help="sites updated (all installed)")
    parser.add_argument("--installs", type=int, default=5, help="installs timed to the login")
    parser.add_argument("--batch", type=int, default=10, help="the update's batch (API default)")
    parser.add_argument("--quick", action="store_true", help="3 installs, 5 sites")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--profile", action="store_true", help="cProfile the update task")
    args = parser.parse_args()
    if args.quick:
        args.installs, args.sites = 3, 5
    args.installs = min(args.installs, args.sites)
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")
    os.environ.setdefault("KONBIT_DEB_CACHE", str(DEFAULT_DEB_CACHE))

    print(f"code: {code_version()}")
    print(f"load at start: {load_average()}", flush=True)
    started = time.perf_counter()
    failures: list[str] = []
    clicks: list[Click] = []
    floor: Floor | None = None
    update: UpdateRun | None = None
    accepted: dict[str, int] = {}
    visitors: dict[str, Counter[int]] = {}
    with (
        tempfile.TemporaryDirectory(prefix="konbit-bench-apps-", dir="/var/tmp") as tmp,
        lab_for_bench() as lab,
        PanelProcs(Path(tmp) / "data") as panel,
    ):
        try:
            pub = public_key(panel.key_path)
            t = time.perf_counter()
            hosts = start_hosts(lab, pub)
            log(f"hosts ready in {time.perf_counter() - t:.0f}s")
            pids = {n: h.pid for n, h in hosts.items()}
            web = hosts["web1"]
            api = LongApi(panel.base, panel.token)
            ids = register_all(api, hosts)
            t = time.perf_counter()
            debian = {"type": "debian", "package": "wordpress"}
            wp = api.call("POST", "/platforms", {"name": "wordpress-debian", "source": debian}, 900)
            edit = {"index.php": "header('X-Konbit-Build: k2');"}
            k2 = derived(api, panel.data, wp, "wordpress-debian-k2", edit)
            cache = os.environ["KONBIT_DEB_CACHE"]
            print(f"platforms {wp['name']} (WordPress {wp['version']}, {wp['size'] / 1e6:.1f} "
                  f"MB) and {k2['name']} built in {time.perf_counter() - t:.1f} s "
                  f"(deb cache {cache})")  # fmt: skip
            t = time.perf_counter()
            sites = make_sites(api, ids["web1"], 1, args.sites)
            bystander = Bystander(api, web, ids["web1"])
            log(f"{len(sites)} accounts and sites applied in {time.perf_counter() - t:.0f}s")

            clicks = run_clicks(api, sites[: args.installs], wp["id"], web.address)
            rest = sites[args.installs :]
            if rest:
                took = install_rest(api, rest, wp["id"])
                print(f"{len(rest)} more sites installed through the worker in {took:.0f} s "
                      f"(untimed set-up, {took / len(rest):.1f} s a site)", flush=True)  # fmt: skip
            fill_database_names(api, sites)
            failures += check_sites(web.address, sites, None)
            panel.stop_worker()

            plugins = load_plugins()
            key = load_client_key(panel.key_path)
            targets = {n: Target(n, h.address, 22, "root", h.host_key) for n, h in hosts.items()}
            if not args.no_floor:
                log("floor")
                artifact = panel.data / "platforms" / f"{k2['sha256']}.tar.gz"
                with bystander.watching() as seen:
                    floor = run_floor(plugins, key, targets, sites, k2, artifact, pids)
                visitors["floor"] = seen
                log(f"floor {floor.cpu.seconds:.1f}s")
                bad = [w for s in sites if (w := serves(web.address, s, BUILD_HEADER))]
                failures += [f"after the floor: {w}" for w in bad]
                undo(plugins, key, targets, sites, wp["name"], k2["name"])
                if not serves(web.address, sites[0], BUILD_HEADER):
                    failures.append("after the floor's undo: still on the new build")

            before = {n: ssh_accepted(h) for n, h in hosts.items()}
            task = api.call("POST", f"/platforms/{wp['id']}/update",
                            {"target_id": k2["id"], "batch": args.batch})  # fmt: skip
            log(f"update task {task['id']}: {len(sites)} sites")
            with bystander.watching() as seen:
                update = run_update(panel.data, task["id"], Labels(plugins), pids, args.profile)
            visitors["update task"] = seen
            log(f"update {update.task['status']} in {update.cpu.seconds:.1f}s")
            time.sleep(0.5)  # syslogd writes the last lines
            accepted = {n: ssh_accepted(h) - before[n] for n, h in hosts.items()}
            if update.task["status"] != "succeeded":
                failures.append(f"update {update.task['status']}: {update.task['error']}")
                print(update.task["log"][-3000:])
            failures += [
                f"after the update: {w}" for w in check_sites(web.address, sites, BUILD_HEADER)
            ]
            got: dict[str, Any] = wait_tasks(api, [task["id"]], 10)[task["id"]]
            if got["status"] != update.task["status"]:
                failures.append(f"the API says the update {got['status']}")
        except Exception as exc:
            failures.append(f"{type(exc).__name__}: {str(exc)[:3000]}")
            keep_logs(panel.data)

    if clicks:
        print_clicks(clicks)
    if update is not None:
        print_update(update, floor, args.sites, accepted)
        named = [("update task", update.cpu)] + ([("floor", floor.cpu)] if floor else [])
        cpu_rows(named, ["web1", "db1", "bk1"])
    for case, seen in visitors.items():
        other = {k: v for k, v in sorted(seen.items()) if k != 200}
        print(f"  a visitor of another PHP site of web1 during the {case}: {seen.total()} "
              f"requests, not a 200: {other or 'none'} (0: no answer)")  # fmt: skip
    for f in failures[:20]:
        print(f"FAILED: {f}")
    print(f"\nload at end: {load_average()}; {time.perf_counter() - started:.0f}s in all")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
