# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key: python/mypy#4717, as in panel.apps.tasks.)
"""The apps bench's update: the panel's POST /platforms/{id}/update task run in this
process (``run_task``, as ``konbit worker`` runs it) with its SSH connections and execs
counted, beside a floor of the same host work done by hand in the same run."""

from __future__ import annotations

import contextlib
import functools
import statistics
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from apps_world import Site
from common import Cpu, metered, print_columns, profiled

import panel.apps.tasks as app_tasks
import panel.tasks.run.backup as backup_task
from panel.core.db import Database
from panel.core.settings import Settings
from panel.tasks.run.dispatch import run_task
from panel.tasks.run.job import run
from panel.tasks.streams import pipe
from provisioners.api import (
    Applications,
    BackupStore,
    DatabaseEngine,
    Provisioner,
    SiteFiles,
    offered,
)
from provisioners.transport import Connection, Target

FLOOR_DIR = "/var/tmp/konbit-floor-apps"  # on bk1: the floor's backups, removed after


# -- what runs on the hosts, by name ------------------------------------------------------


class Labels:
    """A short name for each host command the update runs (the plugins' own scripts)."""

    def __init__(self, plugins: Sequence[Provisioner]) -> None:
        apps = offered(plugins, Applications)
        files, store = offered(plugins, SiteFiles), offered(plugins, BackupStore)
        dump = offered(plugins, DatabaseEngine, "mariadb").dump("x").argv[2]
        self.scripts = {
            apps.platforms().argv[2]: "list platforms",
            apps.put_platform("x-y", "0" * 64, b"").argv[2]: "put platform",
            apps.link("/r", "u", "x-y").argv[2]: "link (switch, php-fpm reload)",
            files.tar_out("/r", gz=True).argv[2]: "tar czf (files)",
            store.store("/p").argv[2]: "store (cat > file)",
            store.size("/p").argv[2]: "du (backup size)",
            dump: "mariadb-dump | gzip",
        }
        self.php = apps.run("wordpress", "update", "/r", "u", {}).argv[2]
        self.codes = {
            apps.run("wordpress", a, "/r", "u", {}).argv[6]: f"wordpress {a} (php)"
            for a in ("install", "update", "status")
        }

    def __call__(self, argv: Sequence[str]) -> str:
        a = list(argv)
        if a[:3] == ["sudo", "-n", "--"]:
            a = a[3:]
        if len(a) >= 3 and a[:2] == ["sh", "-c"]:
            if a[2] == self.php and len(a) >= 7:
                return self.codes.get(a[6], "php (other)")
            return self.scripts.get(a[2], "sh: " + a[2].strip()[:30])
        return " ".join(a[:2])[:40]


@dataclass
class Calls:
    """What a stretch of panel code did over SSH, and the seconds inside some of its
    functions (bench-side wrappers around the real ones)."""

    opens: Counter[str] = field(default_factory=Counter)  # host -> connections
    open_s: float = 0.0
    execs: Counter[str] = field(default_factory=Counter)  # label -> execs (channels too)
    exec_s: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    spans: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    span_n: Counter[str] = field(default_factory=Counter)


@contextlib.contextmanager
def _swapped(owner: Any, name: str, make: Callable[[Any], Any]) -> Iterator[None]:
    original = getattr(owner, name)
    setattr(owner, name, make(original))
    try:
        yield
    finally:
        setattr(owner, name, original)


@contextlib.contextmanager
def instrumented(labels: Labels) -> Iterator[Calls]:
    """Counts every SSH connection and exec of this process (``Connection``'s methods
    wrapped), times each ``run`` by label, and times the update's parts (its backup, the
    pipes, the platform check, the health check) by wrapping those functions where the
    task looks them up. The real code runs; only clocks are added."""
    calls = Calls()

    def opening(orig: Callable[[Connection], None]) -> Callable[[Connection], None]:
        @functools.wraps(orig)
        def wrapper(self: Connection) -> None:
            t = time.perf_counter()
            orig(self)
            calls.open_s += time.perf_counter() - t
            calls.opens[self.target.name] += 1

        return wrapper

    def running(orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(self: Connection, argv: Sequence[str], **kw: Any) -> Any:
            t = time.perf_counter()
            try:
                return orig(self, argv, **kw)
            finally:
                name = labels(argv)
                calls.execs[name] += 1
                calls.exec_s[name] += time.perf_counter() - t

        return wrapper

    def channel(orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(self: Connection, argv: Sequence[str], *a: Any, **kw: Any) -> Any:
            calls.execs[labels(argv)] += 1  # streamed: timed as its pipe
            return orig(self, argv, *a, **kw)

        return wrapper

    def tunnel(orig: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(orig)
        def wrapper(self: Connection, port: int) -> Any:
            calls.execs[f"tunnel :{port} (GET)"] += 1
            return orig(self, port)

        return wrapper

    def span(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def make(orig: Callable[..., Any]) -> Callable[..., Any]:
            @functools.wraps(orig)
            def wrapper(*a: Any, **kw: Any) -> Any:
                t = time.perf_counter()
                try:
                    return orig(*a, **kw)
                finally:
                    calls.spans[name] += time.perf_counter() - t
                    calls.span_n[name] += 1

            return wrapper

        return make

    with contextlib.ExitStack() as stack:
        stack.enter_context(_swapped(Connection, "open", opening))
        # Connection.run's own check (not the wrapper's) raises: run is wrapped whole.
        stack.enter_context(_swapped(Connection, "run", running))
        stack.enter_context(_swapped(Connection, "channel", channel))
        stack.enter_context(_swapped(Connection, "tunnel", tunnel))
        stack.enter_context(_swapped(app_tasks, "backup_site", span("backup (all of it)")))
        stack.enter_context(_swapped(backup_task, "pipe", span("  pipes (tar, dump)")))
        stack.enter_context(_swapped(backup_task, "prune", span("  retention (prune)")))
        stack.enter_context(_swapped(app_tasks, "ensure_platform", span("platform check/put")))
        stack.enter_context(_swapped(app_tasks, "health", span("health (status + GET)")))
        stack.enter_context(_swapped(app_tasks, "_set", span("app row writes")))
        yield calls


@dataclass
class UpdateRun:
    cpu: Cpu
    calls: Calls
    task: dict[str, Any]


def run_update(
    data: Path, task_id: int, labels: Labels, pids: dict[str, int], profile: bool
) -> UpdateRun:
    """The update task, run to its end in this process, as the worker runs it."""
    from panel.tasks.models import Task
    from provisioners.registry import load_plugins

    settings = Settings(data_dir=data, database_url=None)
    db = Database(settings.effective_database_url)
    plugins = load_plugins()
    try:
        with instrumented(labels) as calls, metered(pids) as cpu:
            if profile:
                profiled(lambda: run_task(db, settings, task_id, plugins), "the update", 20)
            else:
                run_task(db, settings, task_id, plugins)
        with db.session() as session:
            t = session.get_one(Task, task_id)
            task = {"status": t.status, "error": t.error, "log": t.log, "result": t.result}
    finally:
        db.engine.dispose()
    return UpdateRun(cpu, calls, task)


# -- the floor ----------------------------------------------------------------------------


@dataclass
class Floor:
    cpu: Cpu
    parts: dict[str, float]
    per_site: list[float]
    wire: int


def run_floor(
    plugins: Sequence[Provisioner],
    key: Any,
    targets: dict[str, Target],
    sites: list[Site],
    platform: dict[str, Any],
    artifact: Path,
    pids: dict[str, int],
) -> Floor:
    """By hand, no panel: one SSH connection to each of web1, db1 and bk1; the target
    build put on web1 once; then for each site the backup's two legs (the same commands
    as the backup task: ``tar czf`` into ``cat > file`` on bk1, ``mariadb-dump | gzip``
    into the same) through the same relay, the switch (the plugin's LINK script) and the
    updater (its WordPress update script)."""
    apps = offered(plugins, Applications)
    files, store = offered(plugins, SiteFiles), offered(plugins, BackupStore)
    engine = offered(plugins, DatabaseEngine, "mariadb")
    parts: dict[str, float] = defaultdict(float)
    per_site, wire = [], 0

    def clock(name: str, since: float) -> float:
        now = time.perf_counter()
        parts[name] += now - since
        return now

    with metered(pids) as cpu:
        t = time.perf_counter()
        with (
            Connection(targets["web1"], key) as web,
            Connection(targets["db1"], key) as dbh,
            Connection(targets["bk1"], key) as bk,
        ):
            t = clock("connect (3 SSH connections)", t)
            data = artifact.read_bytes()
            run(web, apps.put_platform(platform["name"], platform["sha256"], data), check=True)
            t = clock("put platform (once)", t)
            for s in sites:
                site_t = t
                root = files.document_root(s.slug, s.document_root)
                dest = f"{FLOOR_DIR}/{s.domain}"
                got = pipe(web, files.tar_out(root, gz=True).argv,
                           bk, store.store(f"{dest}/files.tar.gz").argv, "floor files")  # fmt: skip
                t = clock("files: tar czf -> cat > file", t)
                dumped = pipe(dbh, engine.dump(s.database).argv,
                              bk, store.store(f"{dest}/db.sql.gz").argv, "floor db")  # fmt: skip
                t = clock("database: mariadb-dump | gzip -> cat > file", t)
                wire += got.bytes + dumped.bytes
                run(web, apps.link(root, s.slug, platform["name"]), check=True)
                t = clock("link (switch, php-fpm reload)", t)
                out = run(web, apps.run("wordpress", "update", root, s.slug, {}))
                if not out.ok or apps.parse_result(out.text()) is None:
                    raise RuntimeError(f"floor: update of {s.domain}: {out.error_text(500)}")
                t = clock("wordpress update (php)", t)
                per_site.append(t - site_t)
    return Floor(cpu, dict(parts), per_site, wire)


def undo_floor(
    plugins: Sequence[Provisioner], key: Any, targets: dict[str, Target], sites: list[Site],
    base: str, platform: str,
) -> None:  # fmt: skip
    """Untimed: the sites back on ``base``, the floor's build and backups removed, so
    the panel's update starts where the floor started."""
    apps, files = offered(plugins, Applications), offered(plugins, SiteFiles)
    with Connection(targets["web1"], key) as web:
        for s in sites:
            run(web, apps.link(files.document_root(s.slug, s.document_root), s.slug, base),
                check=True)  # fmt: skip
        held = apps.parse_platforms(run(web, apps.platforms(), check=True).text())
        if platform in held:
            web.run(["rm", "-rf", "--", f"/srv/konbit/platforms/{platform}"], check=True)
    with Connection(targets["bk1"], key) as bk:
        bk.run(["rm", "-rf", "--", FLOOR_DIR], check=True)


# -- printing -----------------------------------------------------------------------------


def print_update(up: UpdateRun, floor: Floor | None, n: int, accepted: dict[str, int]) -> None:
    total = up.cpu.seconds
    print(f"\nUpdate {n} sites of one platform to a derived build (POST /platforms/{{id}}/update; "
          f"run_task in this process, as the worker runs it): {up.task['status']}")  # fmt: skip
    rows = [("panel: update task", f"{total:.1f}", f"{total / n:.2f}", "", "")]
    if floor is not None:
        f = floor.cpu.seconds
        median = statistics.median(floor.per_site)
        rows.append(("floor: same host work by hand", f"{f:.1f}", f"{f / n:.2f}",
                     f"{total / f:.2f}x",
                     f"median site {median:.2f} s; {floor.wire / 1e6:.1f} MB to bk1"))  # fmt: skip
    print_columns(("case", "total s", "per site s", "task/floor", ""), rows)

    c = up.calls
    print(f"\n  the panel's SSH: {sum(c.opens.values())} connections "
          f"({', '.join(f'{h} {k}' for h, k in sorted(c.opens.items()))}; "
          f"{sum(c.opens.values()) / n:.1f} per site, {c.open_s:.1f} s opening them), "
          f"{sum(c.execs.values())} execs ({sum(c.execs.values()) / n:.1f} per site)")  # fmt: skip
    if accepted:
        print("  sshd's own count (hosts' syslog, 'Accepted publickey'): "
              + ", ".join(f"{h} {k}" for h, k in sorted(accepted.items())))  # fmt: skip
    body = [
        (name, str(k), f"{k / n:.2f}", f"{c.exec_s[name]:.2f}" if name in c.exec_s else "(pipe)")
        for name, k in c.execs.most_common()
    ]
    print_columns(("  exec", "count", "per site", "seconds"), body)

    print("\n  where the task's time goes (bench-side clocks around the task's own functions)")
    spans = c.spans
    link = c.exec_s.get("link (switch, php-fpm reload)", 0.0)
    upd = c.exec_s.get("wordpress update (php)", 0.0)
    status = c.exec_s.get("wordpress status (php)", 0.0)
    if "health (status + GET)" in spans:
        spans["  status script (php)"] = status
        spans["  GET / (tunnel), the rest"] = spans["health (status + GET)"] - status
    rows2 = [(k, f"{v:.1f}", f"{v / n:.3f}", f"{100 * v / total:.0f}%") for k, v in spans.items()]
    rows2.append(("link exec", f"{link:.1f}", f"{link / n:.3f}", f"{100 * link / total:.0f}%"))
    rows2.append(
        ("wordpress update exec", f"{upd:.1f}", f"{upd / n:.3f}", f"{100 * upd / total:.0f}%")
    )
    top = sum(v for k, v in spans.items() if not k.startswith("  ")) + link + upd
    rest = total - top
    rows2.append(("rest (connections for the switch, task log, rows)", f"{rest:.1f}",
                  f"{rest / n:.3f}", f"{100 * rest / total:.0f}%"))  # fmt: skip
    print_columns(("  part", "s", "per site s", "of task"), rows2)
    if floor is not None:
        print("\n  the floor's parts")
        ft = floor.cpu.seconds
        print_columns(
            ("  part", "s", "per site s", "of floor"),
            [
                (k, f"{v:.1f}", f"{v / n:.3f}", f"{100 * v / ft:.0f}%")
                for k, v in floor.parts.items()
            ],
        )


def cpu_rows(named: list[tuple[str, Cpu]], hosts: Sequence[str]) -> None:
    print("\nCPU seconds: panel = this process; a host = every process in it; rest = the "
          "machine's other CPU (serve, kernel, other runs); busy = machine CPU / wall")  # fmt: skip
    body = [
        (name, f"{c.seconds:.1f}", f"{c.panel:.1f}", *(f"{c.hosts.get(h, 0.0):.1f}" for h in hosts),
         f"{c.other:.1f}", f"{c.machine:.1f}", f"{c.machine / c.seconds:.2f}")
        for name, c in named
    ]  # fmt: skip
    print_columns(("case", "wall", "panel", *hosts, "rest", "machine", "busy"), body)
