"""Benchmark: 1,000 members' SFTP logins on one real web test host, beside an OpenSSH floor.

On one nginx test host, in one run (N logins, 5 per site, one site per account):

* first apply of sites + logins from nothing (unix users created; each run on a fresh
  host tree, untimed reset); no-op reconcile; one
  login changed among N (its key replaced); then, on a host that already carries the
  sites, the logins added (the SFTP plugin's own cost) — each around ``HostEngine.apply``
  with a fresh ``Connection``, as the panel runs a reconcile, with its SSH execs and a
  breakdown per phase; after each, one login is tried over SFTP (untimed check);
* the floor, beside them: the same ``sftp/`` files (``users``, ``keys/<login>``,
  ``proftpd.conf``) in one ``tar | ssh host 'extract && <the plugin's checker>'`` with the
  OpenSSH client and the pinned host key (the checker builds ProFTPD's passwd/group with
  the host's uids, then ``proftpd -t``), then one SFTP login against a ProFTPD reading the
  floor's tree (it reads its user file at each login: no restart, as for the engine).

Then click-to-usable: ``konbit serve`` + ``konbit worker`` subprocesses, the host
registered through the API, the same N logins seeded straight into the panel's SQLite and
applied, then 20 times: POST ``/api/v1/objects/sftp_login`` (a new ECDSA key) and try an
SFTP login (port 2222, the host's SFTP key pinned) every 20 ms until it works; p50, p95.

    .venv/bin/python bench/sftp.py                       # 1,000 logins + click (~3 min)
    .venv/bin/python bench/sftp.py --logins 5000 --no-click --repeat 1
    .venv/bin/python bench/sftp.py --profile noop        # cProfile one engine case

One login in four also has a password: one bcrypt hash computed once and shared (hashing
1,000 passwords is ~50 s of CPU the API pays one at a time); ``--password-every 0``: keys
only.  Exit status 1 when the click-to-usable target is missed or a case failed.  Runs as
root (test hosts); traffic stays on lab bridge thbs0 (10.77.46.0/24) and 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import (
    Measure,
    fmt_list,
    konbit_init,
    load_average,
    median_measure,
    print_columns,
    profiled,
)
from reconcile_host import (
    HOST_NAME,
    Row,
    brief,
    engine_apply,
    nginx_workers,
    settle,
    sh,
    ssh_argv,
)
from sftp_click import click_to_usable
from sftp_host import (
    SAVE,
    World,
    build_state,
    drop_sftp,
    floor_once,
    floor_setup,
    fresh,
    login,
    make_world,
    sftp_host_key,
    write_floor_tree,
)

from panel.hosts.sshkey import public_key
from panel.testhosts import Lab, TestHost
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins
from provisioners.transport import Target, load_client_key

C2U_LOGINS = 20
CASES = ("first", "noop", "changed", "sites", "added")


def machine() -> str:
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{os.cpu_count()} cores ({model or 'unknown CPU'})"


def code_version() -> str:
    """The commit under test, and any uncommitted change to the engine or the plugin."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]

    def out(*args: str) -> str:
        return subprocess.run([*git, *args], capture_output=True, text=True, check=False).stdout

    head = out("log", "-1", "--format=%h %s").strip()[:72]
    dirty = out("status", "--short", "provisioners", "templates/hosts/sftp")
    changed = " ".join(line[3:] for line in dirty.splitlines())
    return head + (f" + uncommitted: {changed}" if changed else "")


def bench_engine(
    host: TestHost,
    world: World,
    target: Target,
    key_path: Path,
    known_hosts: Path,
    work: Path,
    repeat: int,
    profile: str | None,
) -> tuple[list[Row], dict[str, Measure], str]:
    engine = HostEngine(load_plugins())
    key = load_client_key(key_path)
    n = world.logins
    full = build_state(world)
    sites_only = build_state(world, with_logins=False)
    checks: list[str] = []

    def timed(case: str, st: object, label: str) -> Measure:
        def run() -> Measure:
            return engine_apply(target, key, engine, st, label)  # type: ignore[arg-type]

        before = nginx_workers(host)
        m = profiled(run, f"{case} N={n}", tottime_top=15) if profile == case else run()
        print(f"  {case} {m.seconds:.3f} s, {m.execs} execs, {m.result} {m.error}", flush=True)
        if m.result == "applied" and case in ("first", "sites"):
            settle(host, before)  # the nginx reload: no case overlaps its config parse
        return m

    def check(label: str, i: int, alt: bool = False) -> None:
        """One login (untimed): it works after that case."""
        k = world.alt_key if alt else world.keys[i]
        started = time.perf_counter()
        why = login(host.address, world.name(i), k, sftp_host_key(host))
        took = time.perf_counter() - started
        checks.append(f"{label}: login {world.name(i)} " + (f"ok ({took:.3f} s)" if why is None
                      else f"FAILED: {why}"))  # fmt: skip

    cases: dict[str, Measure] = {}
    firsts = []
    for i in range(repeat):
        fresh(host)  # untimed: no tree, no bench users, no ProFTPD
        firsts.append(timed("first", full, f"first{i}"))
    cases["first"] = median_measure(firsts)
    if all(m.result == "applied" for m in firsts):
        check("after first apply", n - 1)
        cases["noop"] = median_measure([timed("noop", full, f"noop{i}") for i in range(repeat)])
        changed = []
        for i in range(repeat):
            # Login 1's key: replaced, back, replaced... (a real change every time).
            changed.append(timed("changed", build_state(world, alt=i % 2 == 0), f"chg{i}"))
        cases["changed"] = median_measure(changed)
        check("after one login changed", 0, alt=(repeat - 1) % 2 == 0)

    # The sites alone, then the floor and the logins added onto them.
    sites = []
    for i in range(repeat):
        fresh(host)
        sites.append(timed("sites", sites_only, f"sites{i}"))
    cases["sites"] = median_measure(sites)
    floors: list[float] = []
    after_floor: list[float] = []
    tree = work / "floor"
    files = write_floor_tree(engine, full, tree)
    ssh = ssh_argv(key_path, known_hosts, host.address)
    try:
        floor_setup(host)
        host_key = sftp_host_key(host)
        for _ in range(repeat):
            floors.append(floor_once(tree, ssh))
            started = time.perf_counter()
            why = login(host.address, world.name(n - 1), world.keys[n - 1], host_key)
            if why is not None:
                raise RuntimeError(f"no SFTP login after the floor: {why}")
            after_floor.append(time.perf_counter() - started)
    except RuntimeError as exc:
        print(f"  FLOOR FAILED: {brief(str(exc))}", flush=True)
    floor = statistics.median(floors) if floors else None
    print(f"  floor: {files} files, {fmt_list(floors)} s; login after it "
          f"{fmt_list(after_floor)} s", flush=True)  # fmt: skip
    if after_floor:
        checks.append(f"after the floor: login {world.name(n - 1)} ok "
                      f"({statistics.median(after_floor):.3f} s)")  # fmt: skip
    drop_sftp(host)
    if cases["sites"].result == "applied":
        added = []
        for i in range(repeat):
            added.append(timed("added", full, f"added{i}"))
            if i == 0 and added[0].result == "applied":
                check("after logins added", n // 2)
            # Back to the sites alone (untimed): the plugin's files go, ProFTPD stops,
            # its host key and Debian's defaults are put back.
            engine_apply(target, key, engine, sites_only, f"undo{i}")
            drop_sftp(host)
        cases["added"] = median_measure(added)

    specs = [
        ("first", "first apply: sites + logins"),
        ("noop", "no-op reconcile"),
        ("changed", "one login changed (key)"),
        ("sites", "(sites alone, no logins)"),
        ("added", "logins added onto sites"),
    ]
    rows = [Row("floor: tar | ssh + checker", n, floor or float("nan"), floor, 1, "", "")]
    for k, case in specs:
        m = cases.get(k)
        if m is None:
            rows.append(Row(case, n, float("nan"), floor, "", "", "not run"))
            continue
        expected = "noop" if k == "noop" else "applied"
        verdict = "" if m.result == expected else f"FAIL ({m.result})"
        # The floor is the logins' files only: no ratio for the sites alone.
        rows.append(Row(case, n, m.seconds, None if k == "sites" else floor, m.execs, "", verdict))
    return rows, cases, "\n".join(checks)


def print_table(rows: list[Row]) -> None:
    head = ("case", "logins", "seconds", "floor s", "ratio", "SSH execs", "target", "PASS/MISS")
    body = [
        (
            r.case, str(r.n), f"{r.seconds:.3f}",
            f"{r.floor:.3f}" if r.floor is not None else "",
            f"{r.seconds / r.floor:.2f}x" if r.floor else "",
            str(r.execs), r.target, r.verdict,
        )
        for r in rows
    ]  # fmt: skip
    print_columns(head, body)


PHASES = ("connect", "facts", "local", "bootstrap", "steps", "stage", "validate", "swap",
          "reload", "prune", "other")  # fmt: skip


def print_phases(cases: dict[str, Measure]) -> None:
    print(
        "\nseconds per phase (local = Python: render, hash, tar; validate = the checker, "
        "nginx -t too when sites change; reload = ProFTPD restart, nginx reload; "
        "other = the SFTP host key step and untyped execs; the stage runs beside the steps "
        "and checkers at once, so local, the rest, can come out negative)"
    )
    print(f"{'case':<9}" + " ".join(f"{p:>9}" for p in PHASES))
    for case, m in cases.items():
        print(f"{case:<9}" + " ".join(f"{m.phases.get(p, 0.0):9.3f}" for p in PHASES))
    for case, m in cases.items():
        if m.error:
            print(f"{case}: {m.result}: {m.error}")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--logins", type=int, default=1000, help="SFTP logins (5 per site)")
    parser.add_argument(
        "--password-every", type=int, default=4, help="one login in K also has a password (0: none)"
    )
    parser.add_argument(
        "--repeat", type=int, default=3, help="floor, no-op, changed and added runs (median)"
    )
    parser.add_argument("--no-engine", action="store_true", help="only click-to-usable")
    parser.add_argument("--no-click", action="store_true", help="skip click-to-usable")
    parser.add_argument("--click-logins", type=int, default=C2U_LOGINS)
    parser.add_argument(
        "--click-base", type=int, help="logins seeded before the clicks (default: --logins)"
    )
    parser.add_argument("--profile", choices=CASES, help="cProfile this engine case")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")

    print(f"machine: {machine()}; load at start: {load_average()}")
    print(f"code: {code_version()}", flush=True)
    started = time.perf_counter()
    world = make_world(args.logins, args.password_every)
    base = args.logins if args.click_base is None else args.click_base
    click_world = world if base == args.logins else make_world(base, args.password_every)
    print(f"{args.logins} logins over {world.sites} sites/accounts, one in "
          f"{args.password_every or 'none'} with a password; keys made in "
          f"{time.perf_counter() - started:.1f} s", flush=True)  # fmt: skip
    rows: list[Row] = []
    cases: dict[str, Measure] = {}
    checks = detail = ""
    with tempfile.TemporaryDirectory(prefix="konbit-bench-sftp-") as tmp:
        work = Path(tmp)
        data = work / "data"
        token = konbit_init(data)
        key_path = data / "ssh" / "id_ed25519"
        with Lab(bridge="thbs0", subnet="10.77.46", veth_prefix="bs-") as lab:
            lab.ensure_base()
            host = lab.start(HOST_NAME, roles=["web"], authorized_keys=[public_key(key_path)])
            host.wait_ready(60)
            known_hosts = work / "known_hosts"
            known_hosts.write_text(f"{host.address} {host.host_key}\n")
            sh(host, SAVE)
            target = Target(HOST_NAME, host.address, 22, "root", host.host_key)
            print(f"host {host.address}; repeat {args.repeat}", flush=True)
            if not args.no_engine:
                rows, cases, checks = bench_engine(
                    host, world, target, key_path, known_hosts, work, args.repeat, args.profile
                )
            if not args.no_click:
                try:
                    c2u, detail = click_to_usable(host, data, token, click_world, args.click_logins)
                except Exception as exc:  # keep the engine figures
                    print(f"click-to-usable failed: {str(exc)[:2000]}", flush=True)
                    for name in ("worker.log", "serve.log"):
                        kept = Path(f"/var/tmp/konbit-bench-sftp-{name}")
                        kept.write_bytes((data / name).read_bytes())
                        print(f"  {name}: kept as {kept}", flush=True)
                    c2u = [Row("click-to-usable p50", "", float("nan"), None, "", "", "FAIL")]
                rows += c2u
    print()
    print_table(rows)
    if cases:
        print_phases(cases)
    if checks:
        print("\nSFTP logins tried after the cases (untimed):\n" + checks)
    if detail:
        print("\n" + detail)
    print(f"\nmachine: {machine()}; load at end: {load_average()}")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    missed = any(r.verdict.startswith(("MISS", "FAIL")) for r in rows) or "FAILED" in checks
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
