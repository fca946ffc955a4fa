"""Benchmark: the lifecycle tasks (backup, restore, clone, migrate) against a raw-copy floor.

One site with ``--mb`` MB of files (one big random file making most of it, plus
``--files`` small text files of 4 KB in 20 folders, as real sites have) and a MariaDB
database of ``--db-mb`` MB (rows of word-salad text), on real test hosts: web1 (nginx),
web2 (apache2), db1, db2, bk1.  The panel runs in-process (SQLite, the real app through a
TestClient): each task is started through the API and run with ``run_task``, as the
worker does, and timed around it.  Tasks, in this order:

* backup to bk1; restore in place (from the last backup; the replaced files and database
  are archived first, as the task always does); clone on web1 (a new database on db1);
* migrate the site web1 -> web2; migrate the database db1 -> db2;
* migrate a whole account (a second account: one site like the first, one small site of
  the small files alone, one database like the first) to web2 + db2.

With ``--repeat`` N each is run N times (median), moved back untimed between runs.

The floor is the same bytes between the same hosts with the same tools and no panel
logic, through the same relay (``panel.tasks.streams.pipe`` called with plain commands,
over two fresh SSH connections): ``tar -czf - .`` -> ``tar -xzf -`` for files to and
from the store (plain ``tar`` host to host, as the tasks do) and ``mariadb-dump | gzip``
-> ``gunzip | mariadb`` for a database; a backup's legs end in
``cat > file`` on bk1 and a restore's start with ``cat file`` there (what those tasks
do).  Each floor runs just before its task.

Beside the seconds: MB of data (files + the uncompressed SQL dump), MB on the wire (what
went through the pipes, gzip'd), the seconds a task spent in its pipes (from its log) and
the CPU seconds of this process (the panel's relay), of each test host (every process in
its PID namespace, reaped children included: tar, gzip, sshd, mariadbd) and of the whole
machine.  Then where the time of one backup goes (its log, parsed), and components alone:
tar, gzip, the relay with no compression (paramiko vs OpenSSH clients), untar, dump, load.

    .venv/bin/python bench/lifecycle.py                       # 200 MB + 50 MB (~5 min)
    .venv/bin/python bench/lifecycle.py --mb 20 --db-mb 5
    .venv/bin/python bench/lifecycle.py --only backup,restore --repeat 3
    .venv/bin/python bench/lifecycle.py --no-components

Runs as root (test hosts).  ``KONBIT_LAB=<n>``: bridge thkb<n>, 10.77.<20+n>.0/24 (as the
integration tests); unset: bridge thbl0, 10.77.44.0/24.  Figures only: never asserts.  The
machine is small and shared: the load average is printed at start and end.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import tempfile
import time
from pathlib import Path

from common import lab_for_bench as common_lab
from common import load_average, log
from lifecycle_floor import Component, components, run_floor
from lifecycle_report import code_version, mb, print_components, print_cpu, print_steps, print_tasks
from lifecycle_tasks import LABELS, TASKS, Case, case_data, floor_legs, median_run, run_case
from lifecycle_world import Panel, World, setup, start_hosts

from panel.testhosts import Lab

# ----------------------------------------------------------------------------- main


def lab_for_bench() -> contextlib.AbstractContextManager[Lab]:
    """The bench's lab (``common.lab_for_bench``): its own bridge thbl0, 10.77.44.0/24."""
    return common_lab("l", "10.77.44")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--mb", type=int, default=200, help="MB of site files")
    parser.add_argument("--db-mb", type=int, default=50, help="MB of database text")
    parser.add_argument("--files", type=int, default=2000, help="small files (4 KB) in the site")
    parser.add_argument("--repeat", type=int, default=1, help="runs per task (median)")
    parser.add_argument("--only", default=",".join(TASKS), help="tasks: " + ",".join(TASKS))
    parser.add_argument("--no-components", action="store_true")
    parser.add_argument("--logs", action="store_true", help="every task's steps, not just backup")
    args = parser.parse_args()
    only = [x for x in args.only.split(",") if x]
    unknown = set(only) - set(TASKS)
    if unknown:
        sys.exit(f"unknown tasks {sorted(unknown)}; known: {', '.join(TASKS)}")
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")
    # A restore needs a backup: one runs first (and is reported) when restore is asked.
    todo = [t for t in TASKS if t in only or (t == "backup" and "restore" in only)]
    wanted = ["web1", "db1"]
    wanted += ["bk1"] if {"backup", "restore"} & set(todo) else []
    wanted += ["web2"] if {"migrate", "account"} & set(todo) else []
    wanted += ["db2"] if {"migrate-db", "account"} & set(todo) else []

    print(f"code: {code_version()}")
    print(f"load at start: {load_average()}", flush=True)
    started = time.perf_counter()
    cases: list[Case] = []
    comps: list[Component] = []
    with (
        tempfile.TemporaryDirectory(prefix="konbit-bench-lifecycle-", dir="/var/tmp") as tmp,
        lab_for_bench() as lab,
    ):
        work = Path(tmp)
        panel = Panel(work, lab)
        try:
            t = time.perf_counter()
            hosts = start_hosts(lab, panel.pub, wanted)
            log(f"hosts {', '.join(wanted)} ready in {time.perf_counter() - t:.0f}s")
            w = World(lab, hosts)
            setup(panel, w, args, todo)
            print(f"site: {mb(w.files_bytes['bench.test'])} MB of files; database: "
                  f"{mb(w.sql_bytes)} MB of SQL; repeat {args.repeat}", flush=True)  # fmt: skip
            if not args.no_components:
                log("components")
                comps = components(panel, w, work)
            for name in todo:
                case = Case(name, case_data(w, name))
                for i in range(args.repeat):
                    log(f"{name} {i + 1}/{args.repeat}: floor")
                    case.floors.append(run_floor(panel, floor_legs(w, name)))
                    floor = case.floors[-1].seconds
                    log(f"{name} {i + 1}/{args.repeat}: task (floor {floor:.1f}s)")
                    case.tasks.append(run_case(panel, w, name))
                    log(f"  task {case.tasks[-1].seconds:.1f}s {case.tasks[-1].error}")
                cases.append(case)
        finally:
            panel.close()
    hosts_shown = [h for h in ("web1", "web2", "db1", "db2", "bk1") if h in wanted]
    print_tasks(cases, args.repeat)
    for c in cases:
        for r in c.tasks:
            if r.error:
                print(f"  {c.name}: {r.error[:300]}")
    for c in cases:
        if c.name == "backup" or args.logs:
            print_steps(f"Where one {LABELS[c.name]}'s time goes", median_run(c.tasks))
    if comps:
        print_components(comps)
    print_cpu(cases, comps, hosts_shown)
    print(f"\nload at end: {load_average()}; {time.perf_counter() - started:.0f}s in all")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))


if __name__ == "__main__":
    main()
