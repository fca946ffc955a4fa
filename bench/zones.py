"""Benchmark: DNS zones (issue 16): 2,000 zones on a Knot primary and secondary, first
apply and no-op beside a floor done by hand in the same run, one zone changed, and
click-to-resolvable.

Real test hosts (dns1 the primary, dns2 a secondary, web1 and mail1 for the sites and
mailboxes) and the panel as subprocesses (``konbit init``, ``konbit serve``; ``konbit
worker`` for the clicks), hosts registered through the API.  web1 and mail1 are applied
once while empty; then ``--zones`` accounts, each with one domain and one site on web1
(three in four with the bare domain as an alias), one in three with two mailboxes on mail1
and an active DKIM key, every one with members' records (a TXT; some CNAME, A, CAA, SRV),
bulk-inserted, then the DNS hosts bumped.  web1 and mail1 are never reconciled with them:
the zones need their addresses only, and the DNS figures are the DNS hosts' alone.

* First apply of each DNS host (a fresh host: Debian's Knot running with no zone), the
  worker's ``reconcile_host`` run in this process (snapshot, SSH, ``HostEngine.apply``,
  record), then until every zone is loaded (primary) or transferred (secondary); the
  floor beside it, interleaved, on the same hosts reset (``zones_floor``: one tar stream of
  the same files, the same checkers, a restart).  Then no-op reconciles, and one zone
  changed (a record POSTed, then both hosts reconciled; the floor pushes one zone file).
* Click-to-resolvable: the worker as in production, a member POSTs a new record and both
  servers are asked for it over port 53 (dnspython) every 15 ms; p50 / p95 / max and
  where the time went (``zones_click``).

    .venv/bin/python bench/zones.py --quick                # 200 zones, 1 repeat, 5 clicks
    .venv/bin/python bench/zones.py                        # 2,000 zones, 3 repeats, 10 clicks
    .venv/bin/python bench/zones.py --clicks-only --worker-threads 1
    .venv/bin/python bench/zones.py --no-floor --no-click --repeat 1 --profile changed-dns1

Runs as root (test hosts).  ``KONBIT_LAB=<n>``: bridge thkb<n>, 10.77.<20+n>.0/24 (as
the integration tests); unset: bridge thbd0, 10.77.52.0/24.  Target: click-to-resolvable
p50 < 1.5 s (exit status 1 on a miss or a failed case); the rest are figures beside the
floor.  The machine is small and shared: the load is printed at start and end.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar

import zones_floor as floor
from common import Cpu, load_average, log, median_measure, print_columns
from zones_click import Clicks, run_clicks
from zones_click import report as click_report
from zones_engine import PARTS, Run, reconcile
from zones_world import (
    Panel,
    Seeded,
    Watch,
    apply_empty,
    lab_for_bench,
    register,
    reset,
    seed,
    start_hosts,
    wait_answer,
    wait_served,
)

from panel.hosts.sshkey import public_key
from panel.testhosts import TestHost
from provisioners.api import RecordView

CASES = ("first", "noop", "changed")
R = TypeVar("R", Run, floor.FloorRun)
HOSTS = ("dns1", "dns2")


def code_version() -> str:
    """The commit measured, and any uncommitted change to the code the bench runs."""
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
        return done.stdout

    if not (root / ".git").exists():  # a ``git archive`` of a commit, say
        return f"{root} (not a git checkout)"
    dirty = git("status", "--short", "panel/dns", "panel/hosts", "panel/worker", "provisioners",
                "templates/hosts/knot")  # fmt: skip
    changed = " ".join(line[3:] for line in dirty.splitlines())
    return git("log", "-1", "--format=%h %s").strip()[:72] + (
        f" + uncommitted: {changed}" if changed else ""
    )


class Results:
    """Runs by (case, host): the panel's and the floor's."""

    def __init__(self) -> None:
        self.panel: dict[tuple[str, str], list[Run]] = {}
        self.floor: dict[tuple[str, str], list[floor.FloorRun]] = {}
        self.failures: list[str] = []

    def add(self, case: str, host: str, run: Run, expected: tuple[str, ...]) -> None:
        self.panel.setdefault((case, host), []).append(run)
        if run.result not in expected:
            self.failures.append(f"{case} {host}: {run.result} {run.error}")
        log(f"{case} {host}: {run.seconds:.2f}s {run.result}"
            + (f", served at {run.served:.2f}s" if run.served is not None else ""))  # fmt: skip

    def add_floor(self, case: str, host: str, run: floor.FloorRun) -> None:
        self.floor.setdefault((case, host), []).append(run)
        log(f"floor {case} {host}: {run.seconds:.2f}s"
            + (f", served at {run.served:.2f}s" if run.served is not None else ""))  # fmt: skip


def _served(runs: list[Run] | list[floor.FloorRun]) -> float | None:
    values = [r.served for r in runs if r.served is not None]
    return statistics.median(values) if values else None


@dataclasses.dataclass
class Bench:
    """What every case needs: the panel, the hosts and their ids, the floor's SSH key and
    known_hosts, the CPU meters' PIDs, the results so far, the options."""

    panel: Panel
    hosts: dict[str, TestHost]
    ids: dict[str, int]
    seeded: Seeded
    trees: dict[str, Path]
    known: Path
    pids: dict[str, int]
    results: Results
    with_floor: bool
    profile: str | None

    @property
    def key(self) -> Path:
        return self.panel.key_path

    @property
    def servers(self) -> dict[str, str]:
        return {name: self.hosts[name].address for name in HOSTS}

    def reconcile(
        self, case: str, name: str, i: int, then: Callable[[], object] | None = None
    ) -> Run:
        profile = self.profile == f"{case}-{name}" and i == 0
        label = f"{case}-{name}-{i}"
        return reconcile(self.panel, self.ids[name], label, self.pids, profile, then)


def with_served(b: Bench, host: TestHost, case: Callable[[Callable[[], object]], R]) -> R:
    """``case(then)``, where ``then`` starts watching the host until every zone is served
    (as the case returns, before the CPU meters settle); the case's run, its ``served``
    set to seconds from the start to the watch's end."""
    watches: list[Watch] = []
    started = time.perf_counter()
    run = case(lambda: watches.append(Watch(lambda: wait_served(host, b.seeded.zones))))
    watches[0].result()
    run.served = watches[0].done_at - started
    return run


def first_applies(b: Bench, i: int) -> None:
    """One floor and one first apply of both hosts, each on hosts reset (untimed)."""
    results = b.results
    if b.with_floor:
        reset(*(b.hosts[n] for n in HOSTS))
        for name in HOSTS:
            host = b.hosts[name]
            by_hand = partial(floor.first, b.key, b.known, host, b.trees[name], name == "dns1",
                              b.pids)  # fmt: skip
            results.add_floor("first", name, with_served(b, host, by_hand))
    reset(*(b.hosts[n] for n in HOSTS))
    for name in HOSTS:
        panel = partial(b.reconcile, "first", name, i)
        results.add("first", name, with_served(b, b.hosts[name], panel), ("applied",))


def noops(b: Bench, i: int) -> None:
    for name in HOSTS:
        b.results.add("noop", name, b.reconcile("noop", name, i), ("noop",))
        if b.with_floor:
            b.results.add_floor("noop", name, floor.noop(b.key, b.known, b.hosts[name], b.pids))


def one_zone_changed(b: Bench, i: int) -> float:
    """A record POSTed (the worker stopped: nothing applies it), then the primary and
    the secondary reconciled (a no-op: its files name the zones, not their records), both
    servers asked every 15 ms from the start until they answer it.  The floor: another
    zone's file pushed to the primary.  Returns the POST's seconds."""
    domain = b.seeded.other_domains[2 * i]
    name, value = f"bench{i}", f"198.51.100.{200 + i}"
    started = time.perf_counter()
    body = {"type": "A", "name": name, "address": value}
    b.panel.api().call("POST", f"/domains/{domain['id']}/records", body)
    posted = time.perf_counter() - started
    fqdn = f"{name}.{domain['name']}"
    started = time.perf_counter()
    watch = Watch(lambda: wait_answer(b.servers, fqdn, value, started))
    one = b.reconcile("changed", "dns1", i)
    two = b.reconcile("changed", "dns2", i)
    seen = watch.result()
    one.served, two.served = seen["dns1"], seen["dns2"]
    b.results.add("changed", "dns1", one, ("applied",))
    b.results.add("changed", "dns2", two, ("noop", "applied"))
    if b.with_floor:
        other = b.seeded.other_domains[2 * i + 1]
        state = floor.desired(b.panel, b.ids["dns1"])
        extra = RecordView(f"floor{i}", "A", 300, value)
        zone, path, content = floor.changed_zone(state, other["id"], extra)
        dns1, fqdn = b.hosts["dns1"], f"floor{i}.{other['name']}"
        started = time.perf_counter()
        watch = Watch(lambda: wait_answer(b.servers, fqdn, value, started))
        run = floor.one_zone(b.key, b.known, dns1, zone, path, content, b.pids)
        seen = watch.result()
        run.served = seen["dns1"]
        b.results.add_floor("changed", "dns1", run)
        b.results.add_floor("changed", "dns2", floor.FloorRun(0.0, Cpu(), seen["dns2"]))
        # Back to the panel's file (untimed), so the next reconcile finds no drift.
        zone, path, content = floor.changed_zone(state, other["id"], None)
        floor.one_zone(b.key, b.known, dns1, zone, path, content, b.pids)
    return posted


def print_cases(results: Results, zones: int) -> None:
    print(f"\n{zones} zones. seconds: the panel's reconcile (snapshot to record, in this "
          "process) and the floor by hand; 'served' from the start of the case: every zone "
          "loaded (dns1) or transferred (dns2) for a first apply, the new record answered "
          "over port 53 for one zone changed (dns2: by NOTIFY + IXFR from dns1)")  # fmt: skip
    head = ("case", "host", "panel s", "floor s", "ratio", "panel served", "floor served",
            "ratio", "execs", "panel CPU", "host CPU", "floor host CPU", "runs")  # fmt: skip
    body = []
    for case in CASES:
        for host in HOSTS:
            runs = results.panel.get((case, host), [])
            if not runs:
                continue
            m = median_measure(runs)
            assert isinstance(m, Run)
            floors = results.floor.get((case, host), [])
            f = median_measure(floors) if floors else None
            served, f_served = _served(runs), _served(floors) if floors else None
            ratio = f"{m.seconds / f.seconds:.2f}x" if f and f.seconds else ""
            s_ratio = f"{served / f_served:.2f}x" if served and f_served else ""
            body.append((
                case, host, f"{m.seconds:.3f}", f"{f.seconds:.3f}" if f and f.seconds else "",
                ratio, f"{served:.3f}" if served is not None else "",
                f"{f_served:.3f}" if f_served is not None else "", s_ratio, str(m.execs),
                f"{m.cpu.panel:.2f}", f"{m.cpu.hosts.get(host, 0.0):.2f}",
                f"{f.cpu.hosts.get(host, 0.0):.2f}" if f and f.seconds else "",
                " ".join(f"{r.seconds:.2f}" for r in runs),
            ))  # fmt: skip
    print_columns(head, body)
    print("\nseconds per part of the panel's reconcile (medians of the runs above; "
          "conf-check and check-zones run at once, as do stage and the steps; rest: Python "
          "outside render, the lease, the plan's hashes and diff)")  # fmt: skip
    shown = [p for p in PARTS if any(p in r.parts for runs in results.panel.values() for r in runs)]
    rows = []
    for (case, host), runs in results.panel.items():
        rows.append(
            (
                f"{case} {host}",
                *(f"{statistics.median(r.parts.get(p, 0.0) for r in runs):.3f}" for p in shown),
            )
        )
    print_columns(("case", *shown), rows)


def print_floor_parts(results: Results) -> None:
    """Where the floor's first apply goes (stamps from the hosts' shell)."""
    rows = []
    names: list[str] = []
    for host in HOSTS:
        runs = results.floor.get(("first", host), [])
        names = list(dict.fromkeys([*names, *(n for r in runs for n in r.parts)]))
        if runs:
            rows.append((host, *(
                f"{statistics.median(r.parts.get(n, 0.0) for r in runs):.3f}" for n in names
            )))  # fmt: skip
    if rows:
        print("\nseconds per part of the floor's first apply (medians; connected: OpenSSH's "
              "connection and key exchange; extract: the tar stream; restart: stop, start, "
              "until knotc answers)")  # fmt: skip
        print_columns(("floor", *names), rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--zones", type=int, default=2000, help="accounts, each one zone")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each case (median)")
    parser.add_argument("--clicks", type=int, default=10, help="click-to-resolvable records")
    parser.add_argument("--poll", type=float, default=0.015, help="DNS poll interval (s)")
    parser.add_argument("--worker-threads", type=int, default=4,
                        help="konbit worker --workers (4: its default)")  # fmt: skip
    parser.add_argument("--quick", action="store_true", help="200 zones, 1 repeat, 5 clicks")
    parser.add_argument("--no-floor", action="store_true")
    parser.add_argument("--no-click", action="store_true")
    parser.add_argument("--clicks-only", action="store_true",
                        help="no case: both hosts applied once, untimed")  # fmt: skip
    parser.add_argument("--profile", choices=[f"{c}-{h}" for c in CASES for h in HOSTS],
                        help="cProfile the first run of this case (this process)")  # fmt: skip
    args = parser.parse_args()
    if args.quick:
        args.zones, args.repeat, args.clicks = 200, 1, 5
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")
    args.repeat = max(1, min(args.repeat, 19))  # one zone changed uses 2 domains a run

    print(f"code: {code_version()}")
    print(f"load at start: {load_average()}", flush=True)
    started = time.perf_counter()
    results = Results()
    posts: list[float] = []
    clicks: Clicks | None = None
    with (
        tempfile.TemporaryDirectory(prefix="konbit-bench-dns-", dir="/var/tmp") as tmp,
        lab_for_bench() as lab,
        Panel(Path(tmp) / "data") as panel,
    ):
        try:
            hosts = start_hosts(lab, public_key(panel.key_path))
            pids = {n: h.pid for n, h in hosts.items()}
            api = panel.api()
            ids = register(api, hosts)
            took = apply_empty(panel, ids, ("web1", "mail1"))
            log(f"web1 and mail1 applied (nothing on them) in {took:.1f}s")
            t = time.perf_counter()
            seeded = seed(panel, args.zones, ids)
            print(f"seeded {seeded.zones} accounts/domains/zones, {seeded.sites} sites "
                  f"({seeded.aliases} with an alias), {seeded.mailboxes} mailboxes "
                  f"({seeded.dkim_keys} domains with a DKIM key), "
                  f"{seeded.records} members' records in {time.perf_counter() - t:.1f} s "
                  "(bulk inserts)")  # fmt: skip
            known = Path(tmp) / "known_hosts"
            known.write_text("".join(f"{h.address} {h.host_key}\n" for h in hosts.values()))
            trees: dict[str, Path] = {}
            for name in HOSTS:
                trees[name] = Path(tmp) / f"floor-{name}"
                count = floor.write_floor_tree(floor.desired(panel, ids[name]), trees[name])
                size = sum(f.stat().st_size for f in trees[name].rglob("*") if f.is_file())
                print(f"  {name}: {count} files, {size / 1e6:.2f} MB rendered")
            state = floor.desired(panel, ids["dns1"])
            rrs = sum(len(z.records) for z in state.zones)
            print(
                f"  {len(state.zones)} zones, {rrs} records besides SOA/NS "
                f"({rrs / max(1, len(state.zones)):.1f} a zone)",
                flush=True,
            )

            b = Bench(panel, hosts, ids, seeded, trees, known, pids, results,
                      not args.no_floor, args.profile)  # fmt: skip
            if args.clicks_only:
                reset(*(hosts[n] for n in HOSTS))
                for name in HOSTS:
                    results.add("first", name, b.reconcile("first", name, 0), ("applied",))
                    wait_served(hosts[name], args.zones)
            else:
                for i in range(args.repeat):
                    first_applies(b, i)
                for i in range(args.repeat):
                    noops(b, i)
                posts = [one_zone_changed(b, i) for i in range(args.repeat)]
            if not args.no_click:
                clicks = run_clicks(panel, seeded, hosts, ids, args.clicks, pids, args.poll,
                                    args.worker_threads)  # fmt: skip
        except Exception as exc:
            results.failures.append(f"{type(exc).__name__}: {str(exc)[:3000]}")
            for name in ("worker.log", "serve.log"):
                src = panel.data / name
                if src.is_file():
                    kept = Path(f"/var/tmp/konbit-bench-dns-{name}")
                    kept.write_bytes(src.read_bytes())
                    log(f"{name} kept as {kept}")
    print_cases(results, args.zones)
    print_floor_parts(results)
    if posts:
        med = statistics.median(posts)
        print(f"\n  the POST of a record (as staff, the worker stopped): {med:.3f} s")
    if clicks is not None and clicks.clicks:
        p50, met = click_report(clicks, args.zones, args.worker_threads)
        if not met:
            results.failures.append(f"click-to-resolvable p50 {p50:.3f} s")
    for f in results.failures[:20]:
        print(f"FAILED: {f}")
    print(f"\nload at end: {load_average()}; {time.perf_counter() - started:.0f}s in all")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    sys.exit(1 if results.failures else 0)


if __name__ == "__main__":
    main()
