"""Benchmark: reconcile one real web test host at N sites, beside an OpenSSH floor.

For each N (100, 1,000, 10,000 by default) on one nginx test host, in one run:

* first apply (new host: one unix user per account is created), then the same first apply
  onto a host whose users, homes and document roots already exist (the konbit tree and
  nginx include removed), a no-op reconcile, and one site changed among N (its ``enabled``
  toggled) — each timed around ``HostEngine.apply`` including the SSH connect, as the panel
  does per reconcile, with the SSH execs it took (``conn.commands``) and a breakdown per
  phase (every exec is timed and classified; "local" is Python: render, hash, tar);
* the floor, beside them at the same N: the same rendered files written to a local dir,
  then one ``tar | ssh host 'extract && nginx -t -q && nginx -s reload'`` with the OpenSSH
  client and a known_hosts file holding the pinned host key.

Then click-to-live: ``konbit serve`` + ``konbit worker`` subprocesses, the host registered
through the API, and 20 times: POST a new site, poll the host over HTTP (Host header,
every 20 ms) until it serves the site's own page; p50 and p95.

    .venv/bin/python bench/reconcile.py                  # 100, 1,000, 10,000 + click-to-live
    .venv/bin/python bench/reconcile.py --quick          # 100 and 1,000
    .venv/bin/python bench/reconcile.py --sizes 500 --no-click
    .venv/bin/python bench/reconcile.py --quick --profile one-changed   # cProfile a case

When the engine raises instead of applying (a batched steps script too big for one exec
request), the same first apply is run again with that script sent on stdin, labelled
``[steps on stdin]``: a bench-side prototype of the fix, so the rest can be measured.  If
that fails too while the floor passed, the sites are applied in chunks of 200 ("SEEDED").
Exit status 1 when a target is missed or a case failed.

Runs as root (test hosts); all traffic stays on the lab bridge (10.77.40.0/24) and
127.0.0.1.  The test host's nginx reload goes through the Debian init script (the hosts run
no systemd), which runs its own ``nginx -t`` before the HUP: the engine's "reload" phase pays
one more config parse there than on a systemd host; the breakdown shows it.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from common import Measure, fmt_list, konbit_init, median_measure, print_columns, profiled
from reconcile_click import click_to_live
from reconcile_host import (
    DROP_TREE,
    FLOOR_SETUP,
    FLOOR_TEARDOWN,
    HOST_NAME,
    NOFILE,
    Row,
    brief,
    build_state,
    engine_apply,
    floor_once,
    nginx_workers,
    reloading,
    reset,
    settle,
    sh,
    ssh_argv,
    write_tree,
)

from panel.hosts.sshkey import public_key
from panel.testhosts import Lab, TestHost
from provisioners import web as web_mod
from provisioners.api import DesiredState
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins
from provisioners.transport import Target, load_client_key

FIRST_APPLY_RATIO = 1.5


NOOP_TARGET = 0.5


CHANGED_TARGET = 1.0


C2L_SITES = 20


SEED_CHUNK = 200


# -- one size -----------------------------------------------------------------------------


def bench_size(
    host: TestHost,
    n: int,
    target: Target,
    key_path: Path,
    known_hosts: Path,
    work: Path,
    repeat: int,
    profile: str | None,
) -> tuple[list[Row], dict[str, Measure]]:
    engine = HostEngine(load_plugins())
    key = load_client_key(key_path)
    tag = f"n{n}"
    state = build_state(n, tag)
    reset(host)

    tree = work / f"floor-{n}"
    files = write_tree(engine, state, tree)
    sh(host, FLOOR_SETUP)
    ssh = ssh_argv(key_path, known_hosts, host.address)
    floors: list[float] = []
    try:
        for _ in range(repeat):
            # Every floor run starts where the first apply starts: no per-site log file
            # yet (nginx -t creates 1 per site; that is most of a cold floor here).
            sh(host, f"find {web_mod.LOG_DIR} -type f -delete")
            with reloading(host):
                floors.append(floor_once(tree, ssh))
    except RuntimeError as exc:
        print(f"  N={n}: FLOOR FAILED: {brief(str(exc))}", flush=True)
    floor = statistics.median(floors) if floors else None
    with reloading(host):
        sh(host, FLOOR_TEARDOWN)
    print(f"  N={n}: {files} files, floor {fmt_list(floors)} s", flush=True)

    def timed(case: str, st: DesiredState, label: str, fix: bool = False) -> Measure:
        def run() -> Measure:
            return engine_apply(target, key, engine, st, label, fix)

        m = profiled(run, f"{case} N={n}", tottime_top=15) if profile == case else run()
        print(
            f"  N={n}: {case} {m.seconds:.3f} s, {m.execs} execs, {m.result} {m.error}", flush=True
        )
        return m

    def guarded(case: str, st: DesiredState, label: str, fix: bool = False) -> Measure:
        # A failed apply reloads nothing: do not wait for new nginx workers.
        before = nginx_workers(host)
        m = timed(case, st, label, fix)
        if m.result == "applied":
            settle(host, before)
        return m

    cases: dict[str, Measure] = {}
    cases["first"] = guarded("first", state, f"{tag}-first")
    populated = cases["first"].result == "applied"
    if cases["first"].result == "error":
        # The engine broke before it changed anything (see "error"): the same first apply
        # with the steps script on stdin, to show what the fix would give.
        cases["first-fix"] = guarded("first-fix", state, f"{tag}-first-fix", fix=True)
        populated = cases["first-fix"].result == "applied"
    if not populated and floor is not None:
        # The host can carry N sites (the floor passed) but the engine's first apply did
        # not: put them there in chunks, so that no-op and one-changed still get measured.
        populated = seed(
            host, n, state, lambda st, label: engine_apply(target, key, engine, st, label)
        )
    if populated:
        noops = [timed("noop", state, f"{tag}-noop{i}") for i in range(repeat)]
        cases["noop"] = median_measure(noops)
        changed = []
        for i in range(repeat):
            # Site 1 toggles: disabled, enabled, disabled... (a real change every time).
            st = build_state(n, tag, disabled=frozenset({1}) if i % 2 == 0 else frozenset())
            changed.append(guarded("one-changed", st, f"{tag}-chg{i}"))
        cases["changed"] = median_measure(changed)
        with reloading(host):
            sh(host, DROP_TREE)
        cases["first-warm"] = guarded("first-warm", state, f"{tag}-warm")
        if cases["first-warm"].result == "error":
            cases["first-warm-fix"] = guarded("first-warm-fix", state, f"{tag}-warm-fix", fix=True)

    big = n >= 1000
    specs = [
        ("first", "first apply",
         f"<= {FIRST_APPLY_RATIO}x floor" if big else "",
         (lambda s: floor is not None and s <= FIRST_APPLY_RATIO * floor) if big else None),
        ("first-fix", "first apply [steps on stdin]",
         f"<= {FIRST_APPLY_RATIO}x floor" if big else "",
         (lambda s: floor is not None and s <= FIRST_APPLY_RATIO * floor) if big else None),
        ("first-warm", "first apply, users exist", "", None),
        ("first-warm-fix", "first apply, users exist [stdin]", "", None),
        ("noop", "no-op reconcile", f"< {NOOP_TARGET} s" if n == 1000 else "",
         (lambda s: s < NOOP_TARGET) if n == 1000 else None),
        ("changed", "one site changed", f"< {CHANGED_TARGET} s" if n == 1000 else "",
         (lambda s: s < CHANGED_TARGET) if n == 1000 else None),
    ]  # fmt: skip
    rows = []
    for key_, case, target_text, check in specs:
        m = cases.get(key_)
        if m is None and key_.endswith("-fix"):
            continue
        if m is None:
            rows.append(Row(case, n, float("nan"), floor, "", target_text, "not run"))
            continue
        expected = "noop" if key_ == "noop" else "applied"
        if m.result != expected:
            verdict = f"FAIL ({m.result})"
        else:
            verdict = "" if check is None else ("PASS" if check(m.seconds) else "MISS")
        rows.append(Row(case, n, m.seconds, floor, m.execs, target_text, verdict))
    return rows, cases


def seed(
    host: TestHost, n: int, state: DesiredState, apply: Callable[[DesiredState, str], Measure]
) -> bool:
    """Apply the first 200, 400, ... sites in turn (bench-side fallback, reported)."""
    started = time.perf_counter()
    sizes = [*range(SEED_CHUNK, n, SEED_CHUNK), n]
    for k in sizes:
        before = nginx_workers(host)
        m = apply(dataclasses.replace(state, sites=state.sites[:k]), f"n{n}-seed{k}")
        if m.result != "applied":
            print(f"  N={n}: seeding failed at {k} sites: {m.result} {m.error}", flush=True)
            return False
        settle(host, before)
    print(
        f"  N={n}: SEEDED in {len(sizes)} chunks of {SEED_CHUNK} sites "
        f"({time.perf_counter() - started:.1f} s) since the first apply failed",
        flush=True,
    )
    return True


def print_table(rows: list[Row]) -> None:
    head = ("case", "N", "seconds", "floor s", "ratio", "SSH execs", "target", "PASS/MISS")
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


PHASES = (
    "connect",
    "facts",
    "local",
    "bootstrap",
    "steps",
    "read-old",
    "stage",
    "validate",
    "swap",
    "reload",
    "prune",
    "other",
)


def print_phases(per_size: dict[int, dict[str, Measure]]) -> None:
    print(
        "\nseconds per phase (steps = useradd/home/docroot execs; stage = the tar push; "
        "local = Python: render, hash, tar)"
    )
    print("N       case        " + " ".join(f"{p:>9}" for p in PHASES))
    for n, cases in per_size.items():
        for case, m in cases.items():
            cells = " ".join(f"{m.phases.get(p, 0.0):9.3f}" for p in PHASES)
            print(f"{n:<7} {case:<11} {cells}")
    for n, cases in per_size.items():
        for case, m in cases.items():
            if m.error:
                print(f"N={n} {case}: {m.result}: {m.error}")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 10_000],
        help="comma-separated site counts",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000")
    parser.add_argument(
        "--repeat", type=int, default=3, help="floor, no-op and one-changed runs per size (median)"
    )
    parser.add_argument("--no-click", action="store_true", help="skip click-to-live")
    parser.add_argument("--click-sites", type=int, default=C2L_SITES)
    parser.add_argument(
        "--profile",
        choices=["first", "first-fix", "first-warm", "noop", "one-changed"],
        help="cProfile this engine case (every size)",
    )
    args = parser.parse_args()
    sizes = [100, 1000] if args.quick else args.sizes
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")
    # 10,000 sites are 20,000 per-site log files nginx opens (twice during a reload):
    # the hosts inherit our limit.  Raise it as far as this machine lets us.
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (NOFILE, max(NOFILE, hard)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    print(f"open files limit: {resource.getrlimit(resource.RLIMIT_NOFILE)[0]}")

    rows: list[Row] = []
    per_size: dict[int, dict[str, Measure]] = {}
    detail = ""
    with tempfile.TemporaryDirectory(prefix="konbit-bench-reconcile-") as tmp:
        work = Path(tmp)
        data = work / "data"
        token = konbit_init(data)
        key_path = data / "ssh" / "id_ed25519"
        with Lab(bridge="thbn0", subnet="10.77.40", veth_prefix="bn-") as lab:
            lab.ensure_base()
            host = lab.start(HOST_NAME, roles=["web"], authorized_keys=[public_key(key_path)])
            host.wait_ready(60)
            known_hosts = work / "known_hosts"
            known_hosts.write_text(f"{host.address} {host.host_key}\n")
            sh(
                host,
                "mkdir -p /root/bench-accounts && cd /etc && "
                "cp passwd group shadow gshadow /root/bench-accounts/ && "
                "cp default/nginx /root/bench-accounts/default-nginx",
            )
            target = Target(HOST_NAME, host.address, 22, "root", host.host_key)
            # nginx -t opens every per-site access and error log: 2 files per site, past
            # the 1,024 soft limit an SSH session gets (pam_limits) at ~500 sites.  Raise
            # it for root to the hard limit (untimed; a production host needs the same,
            # see the README), for the floor and the engine alike.
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
            sh(
                host,
                f"printf 'root soft nofile {nofile}\\n' "
                "> /etc/security/limits.d/zz-konbit-bench.conf",
            )
            check = subprocess.run(
                [*ssh_argv(key_path, known_hosts, host.address), "ulimit -n"],
                capture_output=True,
                text=True,
                check=True,
            )
            print(f"open files in an SSH session on the host: {check.stdout.strip()}")
            print(f"host {host.address}; sizes {sizes}; repeat {args.repeat}", flush=True)
            for n in sizes:
                size_rows, cases = bench_size(
                    host, n, target, key_path, known_hosts, work, args.repeat, args.profile
                )
                rows += size_rows
                per_size[n] = cases
            if not args.no_click:
                c2l_rows, detail = click_to_live(host, data, token, args.click_sites)
                rows += c2l_rows
    print()
    print_table(rows)
    print_phases(per_size)
    if detail:
        print("\n" + detail)
    print("\ncommand: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    missed = [r for r in rows if r.verdict.startswith(("MISS", "FAIL"))]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
