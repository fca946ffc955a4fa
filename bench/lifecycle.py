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
import random
import re
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import Cpu, load_average, log, metered, panel_key, print_columns

from panel.core.db import Database
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.reconcile import reconcile_host
from panel.tasks.run.job import run_task
from panel.tasks.streams import pipe
from panel.testhosts import Lab, Role, TestHost, WebServer
from provisioners.api import SiteFiles, offered
from provisioners.registry import load_plugins
from provisioners.transport import Connection, Target

MiB = 1 << 20
SMALL = 4096
TASKS = ("backup", "restore", "clone", "migrate", "migrate-db", "account")
LABELS = {
    "backup": "backup -> bk1",
    "restore": "restore in place",
    "clone": "clone (web1, new db)",
    "migrate": "migrate site web1->web2",
    "migrate-db": "migrate db db1->db2",
    "account": "migrate account ->web2+db2",
}
FLOOR_DIR = "/var/tmp/konbit-floor"
FLOOR_DB = "floor_copy"
PIPE_LOG = re.compile(r"(\d+) bytes in ([\d.]+)s")
LOG_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")


# ----------------------------------------------------------------------------- data


def vocabulary(rng: random.Random) -> list[str]:
    """Words of code and prose plus random identifiers: compresses ~3x, like a site's
    PHP, HTML and posts (a single repeated word would compress 100x)."""
    base = " ".join(
        (
            "the a of to and in is it for on with as this that be are from by at or not",
            "function return array $this-> $value $post $query echo if else foreach while",
            "null true false public private static class new self id name title content",
            "meta option result row key type text link image user data page post get set",
            "add update delete <div> </div> <p> </p> <a href= http:// www .com wp_ get_ the_",
        )
    ).split()
    letters = "abcdefghijklmnopqrstuvwxyz_"
    return base * 4 + ["".join(rng.choices(letters, k=rng.randint(4, 11))) for _ in range(3000)]


def salad(rng: random.Random, words: list[str], size: int) -> str:
    out = " ".join(rng.choices(words, k=size // 5 + 16))
    return out[:size]


def sh(host: TestHost, script: str, *args: str, timeout: float = 900) -> str:
    done = host.exec(["sh", "-c", script, "bench", *args], timeout=timeout)
    if done.returncode != 0:
        raise RuntimeError(f"{host.name}: {script[:80]!r} exited {done.returncode}: "
                           f"{done.stderr[-1500:]}")  # fmt: skip
    return done.stdout


def fill_site(
    host: TestHost, root: str, owner: str, big: int, files: int, db: tuple[str, str, str]
) -> None:
    """``big`` random bytes in one file, ``files`` small text files in 20 folders, an
    index page and an application config naming the database (name, user, host)."""
    rng = random.Random(root)
    words = vocabulary(rng)
    top = host.path(root)
    if big:
        with open(top / "big.bin", "wb") as f:
            left = big
            while left:
                n = min(left, 4 * MiB)
                f.write(os.urandom(n))
                left -= n
    for i in range(files):
        folder = top / "wp-content" / "plugins" / f"plugin{i % 20:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"file{i:05d}.php").write_text(salad(rng, words, SMALL))
    (top / "index.html").write_text(f"<h1>{root}</h1>\n")
    name, user, db_host = db
    (top / "wp-config.php").write_text(
        f"<?php\ndefine('DB_NAME', '{name}');\ndefine('DB_USER', '{user}');\n"
        f"define('DB_PASSWORD', 'bench pass 12');\ndefine('DB_HOST', '{db_host}');\n"
    )
    sh(host, 'chown -R "$2:www-data" "$1"', root, owner)


def fill_sql(path: Path, size: int) -> None:
    """A table of posts (title, ~2 KB body of word salad) summing ``size`` bytes of text,
    as SQL in ~1 MB INSERTs."""
    rng = random.Random(size)
    words = vocabulary(rng)
    with open(path, "w") as f:
        f.write(
            "CREATE TABLE posts (id INT AUTO_INCREMENT PRIMARY KEY, title VARCHAR(200) "
            "NOT NULL, body MEDIUMTEXT NOT NULL) ENGINE=InnoDB;\n"
        )
        written = 0
        while written < size:
            rows = []
            for _ in range(500):
                title, body = salad(rng, words, 60), salad(rng, words, 2000)
                rows.append(f"('{title}','{body}')")
                written += len(title) + len(body)
                if written >= size:
                    break
            f.write("INSERT INTO posts (title, body) VALUES " + ",".join(rows) + ";\n")


# ----------------------------------------------------------------------------- the panel


@dataclass
class Run:
    """One measured task or floor."""

    cpu: Cpu
    wire: int = 0  # bytes through the pipes
    piped: float = 0.0  # seconds in the pipes
    log: str = ""
    error: str = ""

    @property
    def seconds(self) -> float:
        return self.cpu.seconds


class Panel:
    """The API in-process (a TestClient on the real app) and the worker's pieces."""

    def __init__(self, work: Path, lab: Lab) -> None:
        from starlette.testclient import TestClient

        import panel.models  # noqa: F401  (every table in the metadata)
        from panel.accounts import service as accounts
        from panel.app import create_app

        self.lab = lab
        self.settings = Settings(data_dir=work, database_url=None)
        url = self.settings.effective_database_url
        upgrade(url)
        self.db = Database(url)
        self.plugins = load_plugins()
        self.client = TestClient(create_app(self.settings, self.db), raise_server_exceptions=True)
        self.client.__enter__()
        with self.db.session() as session:
            user = accounts.create_user(session, email="staff@bench.test", is_staff=True)
            _, self.token = accounts.create_token(
                session, None, user, name="bench", scopes=["admin"], expires_at=None
            )
            session.commit()
        self.key, self.pub = panel_key(self.settings.ssh_key_path)
        self.host_ids: dict[str, int] = {}

    def close(self) -> None:
        self.client.__exit__(None, None, None)
        self.db.engine.dispose()

    def call(self, method: str, path: str, status: int = 200, **body: Any) -> Any:
        r = self.client.request(
            method,
            f"/api/v1{path}",
            headers={"Authorization": f"Bearer {self.token}"},
            json=body or None,
        )
        if r.status_code != status:
            raise RuntimeError(f"{method} {path}: {r.status_code} {r.text[:1000]}")
        return r.json() if r.content else None

    def register(self, host: TestHost, roles: list[str], **extra: Any) -> int:
        row = self.call(
            "POST", "/hosts", 201, name=host.name, address=host.address,
            host_key=host.host_key, roles=roles, **extra,
        )  # fmt: skip
        self.host_ids[host.name] = row["id"]
        return int(row["id"])

    def reconcile(self, name: str) -> None:
        report = reconcile_host(self.db, self.settings, self.host_ids[name], self.plugins, "bench")
        if report is None or report.result not in ("applied", "noop"):
            raise RuntimeError(f"reconcile {name}: {report}")

    def run(self, method: str, path: str, **body: Any) -> tuple[Run, dict[str, Any]]:
        """Start a task through the API, run it as the worker would, timed."""
        task = self.call(method, path, 202, **body)
        with metered(self.pids()) as cpu:
            run_task(self.db, self.settings, task["id"], self.plugins)
        done: dict[str, Any] = self.call("GET", f"/tasks/{task['id']}")
        got = [(int(b), float(s)) for b, s in PIPE_LOG.findall(done["log"])]
        run = Run(
            cpu,
            sum(b for b, _ in got),
            sum(s for _, s in got),
            done["log"],
            "" if done["status"] == "succeeded" else f"{done['status']}: {done['error']}",
        )
        if run.error:
            log(f"{done['kind']} {run.error}\n{done['log'][-3000:]}")
        return run, done

    def pids(self) -> dict[str, int]:
        return {name: h.pid for name, h in self.lab.hosts.items() if h.running}

    def target(self, host: TestHost) -> Target:
        return Target(host.name, host.address, 22, "root", host.host_key)


# ----------------------------------------------------------------------------- floors


@dataclass(frozen=True)
class Leg:
    """One pipe of a floor: argv on ``src`` into argv on ``dst``; ``prep`` runs on
    ``dst`` first, untimed."""

    src: TestHost
    src_argv: list[str]
    dst: TestHost
    dst_argv: list[str]
    prep: str = ""


def tar_out(root: str, gz: bool = True) -> list[str]:
    """gzip'd for the store; plain host to host, as the tasks do."""
    return ["tar", "-C", root, "-czf" if gz else "-cf", "-", "."]


def untar_into(path: str, gz: bool = True) -> list[str]:
    x = "-xzf" if gz else "-xf"
    return ["sh", "-c", f'mkdir -p "$1" && tar {x} - -C "$1"', "floor", path]


def store(path: str) -> list[str]:
    return ["sh", "-c", 'cat > "$1"', "floor", path]


def dump_gz(name: str) -> list[str]:
    return ["sh", "-c", 'mariadb-dump --single-transaction -- "$1" | gzip', "floor", name]


def load_gz(name: str) -> list[str]:
    return ["sh", "-c", 'gunzip | mariadb --batch -- "$1"', "floor", name]


PREP_DIR = f"rm -rf {FLOOR_DIR}/files-* && mkdir -p {FLOOR_DIR}"
PREP_DB = (
    f"mkdir -p {FLOOR_DIR} && mariadb -e "
    f"'DROP DATABASE IF EXISTS {FLOOR_DB}; CREATE DATABASE {FLOOR_DB}'"
)


def run_floor(panel: Panel, legs: Sequence[Leg]) -> Run:
    for leg in legs:
        if leg.prep:
            sh(leg.dst, leg.prep)
    wire, piped = 0, 0.0
    with metered(panel.pids()) as cpu:
        for leg in legs:
            with (
                Connection(panel.target(leg.src), panel.key) as a,
                Connection(panel.target(leg.dst), panel.key) as b,
            ):
                got = pipe(a, leg.src_argv, b, leg.dst_argv, "floor")
            wire += got.bytes
            piped += got.seconds
    return Run(cpu, wire, piped)


# ----------------------------------------------------------------------------- world


@dataclass
class World:
    """What the bench made: hosts, the two accounts' sites and databases, their sizes."""

    lab: Lab
    hosts: dict[str, TestHost]
    sites: dict[str, dict[str, Any]] = field(default_factory=dict)  # domain -> SiteOut
    roots: dict[str, str] = field(default_factory=dict)  # domain -> document root
    dbs: dict[str, dict[str, Any]] = field(default_factory=dict)  # name -> DatabaseOut
    accounts: dict[str, dict[str, Any]] = field(default_factory=dict)
    files_bytes: dict[str, int] = field(default_factory=dict)  # domain -> du -sb
    sql_bytes: int = 0  # the uncompressed dump of one database
    big: str = ""  # the big file's path on web1 (components)
    backup_id: int = 0
    clones: int = 0

    def h(self, name: str) -> TestHost:
        return self.hosts[name]


def start_hosts(lab: Lab, pub: str, wanted: list[str]) -> dict[str, TestHost]:
    spec: dict[str, tuple[Role, WebServer]] = {
        "web1": ("web", "nginx"),
        "web2": ("web", "apache2"),
        "db1": ("db", "nginx"),
        "db2": ("db", "nginx"),
        "bk1": ("backup", "nginx"),
    }
    hosts = {}
    for name in wanted:
        role, server = spec[name]
        hosts[name] = lab.start(name, roles=[role], authorized_keys=[pub], web_server=server)
    for h in hosts.values():
        h.wait_ready(180)
    return hosts


def make_account(panel: Panel, w: World, slug: str, domains: list[str]) -> None:
    account = panel.call(
        "POST", "/accounts", 201, slug=slug, name=slug.title(), email=f"contact@{slug}.test",
        quotas={"sites": 100, "databases": 100, "disk_mb": 1_000_000},
    )  # fmt: skip
    w.accounts[slug] = account
    for domain in domains:
        panel.call("POST", "/domains", 201, account_id=account["id"], name=domain)
        site = panel.call("POST", "/sites", 201, account_id=account["id"], domain=domain)
        w.sites[domain] = site
        w.roots[domain] = offered(panel.plugins, SiteFiles).document_root(
            slug, site["document_root"]
        )
    name = f"{slug}_app"
    w.dbs[name] = panel.call(
        "POST", "/databases", 201, account_id=account["id"], name=name, engine="mariadb"
    )
    panel.call(
        "POST", "/database-users", 201, account_id=account["id"], name=f"{slug}_web",
        password="bench pass 12", databases=[name],
    )  # fmt: skip


def setup(panel: Panel, w: World, args: argparse.Namespace, todo: list[str]) -> None:
    t = time.perf_counter()
    web1, db1 = w.h("web1"), w.h("db1")
    panel.register(web1, ["web"])
    panel.register(db1, ["db"])
    if "bk1" in w.hosts:
        panel.register(w.h("bk1"), ["backup"])
    make_account(panel, w, "bench", ["bench.test"])
    if "account" in todo:
        make_account(panel, w, "move", ["move.test", "move2.test"])
    panel.reconcile("db1")
    panel.reconcile("web1")
    small = min(args.files * SMALL, args.mb * MiB // 2)
    files = small // SMALL
    big = args.mb * MiB - small
    fill_site(web1, w.roots["bench.test"], "bench", big, files,
              ("bench_app", "bench_web", db1.address))  # fmt: skip
    w.big = f"{w.roots['bench.test']}/big.bin"
    sql = db1.path("/var/tmp/bench-fill.sql")
    fill_sql(sql, args.db_mb * MiB)
    sh(db1, 'mariadb bench_app < "$1"', "/var/tmp/bench-fill.sql")
    if "account" in todo:
        sh(web1, 'cp -a "$1/." "$2/" && chown -R move:www-data "$2"',
           w.roots["bench.test"], w.roots["move.test"])  # fmt: skip
        fill_site(web1, w.roots["move2.test"], "move", 0, files,
                  ("move_app", "move_web", db1.address))  # fmt: skip
        sh(web1, """sed -i "s/bench_/move_/g" "$1/wp-config.php" """, w.roots["move.test"])
        sh(db1, 'mariadb move_app < "$1"', "/var/tmp/bench-fill.sql")
    sql.unlink()
    for domain, root in w.roots.items():
        w.files_bytes[domain] = int(sh(web1, 'du -sb "$1" | cut -f1', root).strip())
    w.sql_bytes = int(
        sh(db1, 'mariadb-dump --single-transaction bench_app | wc -c').strip()
    )  # fmt: skip
    log(
        f"world ready in {time.perf_counter() - t:.0f}s: bench.test "
        f"{w.files_bytes['bench.test'] / MiB:.1f} MB ({files} small files), bench_app dump "
        f"{w.sql_bytes / MiB:.1f} MB"
    )


def ensure_registered(panel: Panel, w: World, name: str) -> int:
    if name not in panel.host_ids:
        h = w.h(name)
        if name.startswith("web"):
            panel.register(h, ["web"], settings={"web_server": "apache2"})
        else:
            panel.register(h, ["db"])
        panel.reconcile(name)  # a host in service has been reconciled before: untimed
    return panel.host_ids[name]


# ----------------------------------------------------------------------------- the tasks


@dataclass
class Case:
    name: str
    data: int  # bytes of data (files + uncompressed dumps)
    floors: list[Run] = field(default_factory=list)
    tasks: list[Run] = field(default_factory=list)


def case_data(w: World, name: str) -> int:
    site = w.files_bytes["bench.test"]
    if name in ("backup", "restore", "clone"):
        return site + w.sql_bytes
    if name == "migrate":
        return site
    if name == "migrate-db":
        return w.sql_bytes
    return w.files_bytes["move.test"] + w.files_bytes["move2.test"] + w.sql_bytes


def floor_legs(w: World, name: str) -> list[Leg]:
    web1, db1 = w.h("web1"), w.h("db1")
    root = w.roots["bench.test"]
    if name == "backup":
        bk1 = w.h("bk1")
        return [
            Leg(web1, tar_out(root), bk1, store(f"{FLOOR_DIR}/files.tar.gz"), PREP_DIR),
            Leg(db1, dump_gz("bench_app"), bk1, store(f"{FLOOR_DIR}/db.sql.gz")),
        ]
    if name == "restore":
        bk1 = w.h("bk1")
        return [
            Leg(bk1, ["cat", f"{FLOOR_DIR}/files.tar.gz"], web1,
                untar_into(f"{FLOOR_DIR}/files-r"), PREP_DIR),
            Leg(bk1, ["cat", f"{FLOOR_DIR}/db.sql.gz"], db1, load_gz(FLOOR_DB), PREP_DB),
        ]  # fmt: skip
    if name == "clone":
        return [
            Leg(web1, tar_out(root, False), web1, untar_into(f"{FLOOR_DIR}/files-c", False),
                PREP_DIR),
            Leg(db1, dump_gz("bench_app"), db1, load_gz(FLOOR_DB), PREP_DB),
        ]
    web2, db2 = w.h("web2") if "web2" in w.hosts else None, w.h("db2") if "db2" in w.hosts else None
    if name == "migrate":
        assert web2 is not None
        return [
            Leg(web1, tar_out(root, False), web2, untar_into(f"{FLOOR_DIR}/files-m", False),
                PREP_DIR)
        ]  # fmt: skip
    if name == "migrate-db":
        assert db2 is not None
        return [Leg(db1, dump_gz("bench_app"), db2, load_gz(FLOOR_DB), PREP_DB)]
    assert web2 is not None and db2 is not None
    return [
        Leg(web1, tar_out(w.roots["move.test"], False), web2,
            untar_into(f"{FLOOR_DIR}/files-a", False), PREP_DIR),
        Leg(web1, tar_out(w.roots["move2.test"], False), web2,
            untar_into(f"{FLOOR_DIR}/files-b", False)),
        Leg(db1, dump_gz("move_app"), db2, load_gz(FLOOR_DB), PREP_DB),
    ]  # fmt: skip


def run_case(panel: Panel, w: World, name: str) -> Run:
    """One timed task; what it moved is moved back after (untimed) so the next run
    starts from the same place."""
    site = w.sites["bench.test"]
    if name == "backup":
        run, done = panel.run("POST", f"/sites/{site['id']}/backups")
        w.backup_id = int(done["result"].get("backup_id") or 0)
        return run
    if name == "restore":
        return panel.run("POST", f"/sites/{site['id']}/restore", backup_id=w.backup_id)[0]
    if name == "clone":
        w.clones += 1
        domain = f"bench-clone{w.clones}.test"
        panel.call("POST", "/domains", 201, account_id=site["account_id"], name=domain)
        return panel.run(
            "POST", f"/sites/{site['id']}/clone", domain=domain, databases=["bench_app"]
        )[0]
    if name == "migrate":
        web1, web2 = ensure_registered(panel, w, "web1"), ensure_registered(panel, w, "web2")
        run, _ = panel.run("POST", f"/sites/{site['id']}/migrate", host_id=web2)
        back, _ = panel.run("POST", f"/sites/{site['id']}/migrate", host_id=web1)
        log(f"  (moved back web2 -> web1 in {back.seconds:.1f}s {back.error})")
        return run
    db = w.dbs["bench_app"]
    if name == "migrate-db":
        db1, db2 = ensure_registered(panel, w, "db1"), ensure_registered(panel, w, "db2")
        run, _ = panel.run("POST", f"/databases/{db['id']}/migrate", host_id=db2)
        back, _ = panel.run("POST", f"/databases/{db['id']}/migrate", host_id=db1)
        log(f"  (moved back db2 -> db1 in {back.seconds:.1f}s {back.error})")
        return run
    account = w.accounts["move"]
    web1, web2 = ensure_registered(panel, w, "web1"), ensure_registered(panel, w, "web2")
    db1, db2 = ensure_registered(panel, w, "db1"), ensure_registered(panel, w, "db2")
    path = f"/accounts/{account['id']}/migrate"
    run, _ = panel.run("POST", path, web_host_id=web2, db_host_id=db2)
    back, _ = panel.run("POST", path, web_host_id=web1, db_host_id=db1)
    log(f"  (moved back to web1 + db1 in {back.seconds:.1f}s {back.error})")
    return run


def median_run(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.seconds)[len(runs) // 2]


# ----------------------------------------------------------------------------- components


@dataclass
class Component:
    name: str
    data: int
    run: Run
    note: str = ""


def local(panel: Panel, host: TestHost, script: str, *args: str) -> Run:
    """A command on one host over one SSH connection, nothing streamed back."""
    with Connection(panel.target(host), panel.key) as conn:
        conn.run(["true"])  # the handshake out of the figure
        with metered(panel.pids()) as cpu:
            conn.run(["sh", "-c", script, "bench", *args], timeout=3600, check=True)
    return Run(cpu)


def openssh_relay(
    panel: Panel, work: Path, src: TestHost, src_cmd: str, dst: TestHost, dst_cmd: str
) -> Run:
    """The same relay with two OpenSSH clients on this machine (C, no Python)."""
    known = work / "known_hosts"
    known.write_text("".join(f"{h.address} {h.host_key}\n" for h in (src, dst)))

    def ssh(host: TestHost, cmd: str) -> list[str]:
        return [
            "ssh", "-i", str(panel.settings.ssh_key_path), "-o", "IdentitiesOnly=yes",
            "-o", "BatchMode=yes", "-o", f"UserKnownHostsFile={known}",
            "-o", "GlobalKnownHostsFile=/dev/null", "-o", "StrictHostKeyChecking=yes",
            f"root@{host.address}", cmd,
        ]  # fmt: skip

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    with metered(panel.pids()) as cpu:
        a = subprocess.Popen(ssh(src, src_cmd), stdout=subprocess.PIPE)
        b = subprocess.Popen(ssh(dst, dst_cmd), stdin=a.stdout)
        assert a.stdout is not None
        a.stdout.close()
        if b.wait() != 0 or a.wait() != 0:
            raise RuntimeError(f"openssh relay: {a.returncode} {b.returncode}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu.panel = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return Run(cpu)


def zstd_on(hosts: Sequence[TestHost]) -> str:
    """zstd on the hosts, for the prototypes: the test image has none, so this machine's
    binary (Debian 12, as the hosts; it needs only libc, zlib, lzma, lz4) is copied into
    each one's /usr/local/bin, untimed.  Returns a note, empty when there is no zstd."""
    here = shutil.which("zstd")
    note = ""
    for h in hosts:
        if h.exec(["sh", "-c", "command -v zstd"]).returncode == 0:
            continue
        if here is None:
            return ""
        dest = h.path("/usr/local/bin/zstd")
        shutil.copyfile(here, dest)
        dest.chmod(0o755)
        if h.exec(["zstd", "--version"]).returncode != 0:
            return ""
        note = "zstd copied into the hosts"
    return note


def components(panel: Panel, w: World, work: Path) -> list[Component]:
    web1, db1 = w.h("web1"), w.h("db1")
    dst = w.hosts.get("bk1") or w.hosts.get("web2") or db1  # the raw relay's receiver
    fdst = w.hosts.get("web2") or w.hosts.get("bk1") or web1  # files, host to host
    ddst = w.hosts.get("db2") or db1  # a database, host to host
    root = w.roots["bench.test"]
    files, big = w.files_bytes["bench.test"], int(sh(web1, 'stat -c %s "$1"', w.big))
    tmp = f"{FLOOR_DIR}/c"
    sh(web1, f"rm -rf {tmp} && mkdir -p {tmp}")
    sh(db1, PREP_DB)
    out: list[Component] = []

    def add(name: str, data: int, run: Run, note: str = "") -> None:
        out.append(Component(name, data, run, note))
        log(f"  {name}: {run.seconds:.2f}s")

    zstd = zstd_on(list({h.name: h for h in (web1, db1, fdst, ddst)}.values()))
    add("tar (no gzip) web1", files,
        local(panel, web1, 'tar -C "$1" -cf - . | cat >/dev/null', root))  # fmt: skip
    add("tar | gzip -6 web1 (tar czf)", files,
        local(panel, web1, 'tar -C "$1" -czf "$2" .', root, f"{tmp}/f.tar.gz"))  # fmt: skip
    add("tar | gzip -1 web1", files,
        local(panel, web1, 'tar -C "$1" -cf - . | gzip -1 >/dev/null', root))  # fmt: skip
    has_zstd = all(
        h.exec(["sh", "-c", "command -v zstd"]).returncode == 0 for h in (web1, fdst, db1, ddst)
    )
    if has_zstd:
        run = local(panel, web1, 'tar -C "$1" -cf - . | zstd -q -3 >/dev/null', root)
        add("tar | zstd -3 web1", files, run, zstd)
    add("untar (tar xzf) web1", files,
        local(panel, web1, 'mkdir -p "$2" && tar -xzf "$1" -C "$2"', f"{tmp}/f.tar.gz",
              f"{tmp}/x"))  # fmt: skip
    with Connection(panel.target(web1), panel.key) as a:
        transport = a._client.get_transport() if a._client else None
        cipher = f"{transport.local_cipher}/{transport.local_mac}" if transport else "?"
    relay = "cat big.bin -> cat >/dev/null"
    run = run_floor(panel, [Leg(web1, ["cat", w.big], dst, ["sh", "-c", "cat >/dev/null"])])
    add(f"relay web1->{dst.name}, pipe() (paramiko)", big, run, f"{relay}; {cipher}")
    run = openssh_relay(panel, work, web1, f"cat {shlex.quote(w.big)}", dst, "cat >/dev/null")
    add(f"relay web1->{dst.name}, 2 OpenSSH clients", big, run, relay)
    # Prototypes: the files of a move with no compression, or zstd, through pipe().
    raw = ["sh", "-c", 'mkdir -p "$1" && tar -xf - -C "$1"', "p", f"{FLOOR_DIR}/files-p"]
    run = run_floor(panel, [Leg(web1, ["tar", "-C", root, "-cf", "-", "."], fdst, raw, PREP_DIR)])
    add(f"files web1->{fdst.name}: tar -> pipe() -> tar x", files, run, "no compression")
    if has_zstd:
        src = ["sh", "-c", 'tar -C "$1" -cf - . | zstd -q -3', "p", root]
        unz = ["sh", "-c", 'mkdir -p "$1" && zstd -q -d | tar -xf - -C "$1"', "p",
               f"{FLOOR_DIR}/files-p"]  # fmt: skip
        run = run_floor(panel, [Leg(web1, src, fdst, unz, PREP_DIR)])
        add(f"files web1->{fdst.name}: tar | zstd -3 -> pipe()", files, run, "-> zstd -d | tar x")
    sql = w.sql_bytes
    dump = "mariadb-dump --single-transaction bench_app"
    add("mariadb-dump db1", sql, local(panel, db1, f"{dump} | cat >/dev/null"))
    add("mariadb-dump | gzip db1", sql, local(panel, db1, f"{dump} | gzip > {FLOOR_DIR}/d.gz"))
    add("gunzip | mariadb (load) db1", sql,
        local(panel, db1, f"gunzip < {FLOOR_DIR}/d.gz | mariadb {FLOOR_DB}"))  # fmt: skip
    load = ["sh", "-c", f"mariadb --batch {FLOOR_DB}"]
    run = run_floor(panel, [Leg(db1, ["sh", "-c", dump], ddst, load, PREP_DB)])
    add(f"db db1->{ddst.name}: dump -> pipe() -> mariadb", sql, run, "no compression")
    if has_zstd:
        zload = ["sh", "-c", f"zstd -q -d | mariadb --batch {FLOOR_DB}"]
        run = run_floor(panel, [Leg(db1, ["sh", "-c", f"{dump} | zstd -q -3"], ddst, zload,
                                    PREP_DB)])  # fmt: skip
        add(f"db db1->{ddst.name}: dump | zstd -3 -> pipe()", sql, run, "-> zstd -d | mariadb")
    sh(web1, f"rm -rf {tmp}")
    sh(fdst, f"rm -rf {FLOOR_DIR}/files-p")
    sh(db1, f"rm -f {FLOOR_DIR}/d.gz; mariadb -e 'DROP DATABASE IF EXISTS {FLOOR_DB}'")
    return out


# ----------------------------------------------------------------------------- printing


def mb(n: float) -> str:
    return f"{n / MiB:.1f}"


def rate(n: float, s: float) -> str:
    return f"{n / MiB / s:.1f}" if s > 0 else "-"


def print_tasks(cases: list[Case], repeat: int) -> None:
    print(f"\nTasks against the floor (median of {repeat}; MB = files + uncompressed dump; "
          "wire = gzip'd bytes through the pipes)")  # fmt: skip
    body = []
    for c in cases:
        t, f = median_run(c.tasks), median_run(c.floors)
        body.append((
            LABELS[c.name], mb(c.data), mb(t.wire), f"{t.seconds:.1f}", rate(c.data, t.seconds),
            f"{t.piped:.1f}", f"{t.seconds - t.piped:.1f}", f"{f.seconds:.1f}",
            rate(c.data, f.seconds), f"{t.seconds / f.seconds:.2f}x",
            "FAILED" if any(r.error for r in c.tasks) else "",
        ))  # fmt: skip
    print_columns(
        ("task", "MB", "wire MB", "task s", "MB/s", "in pipes", "rest", "floor s",
         "floor MB/s", "task/floor", ""),
        body,
    )  # fmt: skip
    if repeat > 1:
        for c in cases:
            runs = ", ".join(f"{t.seconds:.1f}/{f.seconds:.1f}" for t, f in
                             zip(c.tasks, c.floors, strict=True))  # fmt: skip
            print(f"  {LABELS[c.name]}: task/floor runs {runs}")


def cpu_row(name: str, cpu: Cpu, hosts: Sequence[str]) -> tuple[str, ...]:
    return (
        name, f"{cpu.seconds:.1f}", f"{cpu.panel:.1f}",
        *(f"{cpu.hosts.get(h, 0.0):.1f}" for h in hosts),
        f"{cpu.other:.1f}", f"{cpu.machine:.1f}", f"{cpu.machine / cpu.seconds:.2f}",
    )  # fmt: skip


def print_cpu(cases: list[Case], comps: list[Component], hosts: Sequence[str]) -> None:
    print("\nCPU seconds (median run of each): panel = this process (the relay's Python and "
          "paramiko; for OpenSSH the ssh clients); a host = every process in it; rest = "
          "the machine's other CPU (the kernel's network path, other runs on the machine); "
          "busy = machine CPU / wall (2 = both cores busy)")  # fmt: skip
    body = []
    for c in cases:
        body.append(cpu_row(f"{LABELS[c.name]}: task", median_run(c.tasks).cpu, hosts))
        body.append(cpu_row("  floor", median_run(c.floors).cpu, hosts))
    for comp in comps:
        body.append(cpu_row(comp.name, comp.run.cpu, hosts))
    print_columns(("case", "wall", "panel", *hosts, "rest", "machine", "busy"), body)


def print_components(comps: list[Component]) -> None:
    print("\nComponents alone (one run each; a host's command with no transfer, or the relay "
          "of raw bytes with nothing to compress)")  # fmt: skip
    body = [
        (c.name, mb(c.data), f"{c.run.seconds:.2f}", rate(c.data, c.run.seconds), c.note)
        for c in comps
    ]
    print_columns(("component", "MB", "s", "MB/s", ""), body)


def print_steps(title: str, run: Run) -> None:
    print(f"\n{title} (its log; step = since the line before)")
    body = []
    last = 0.0
    for line in run.log.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        at, msg = float(m.group(1)), m.group(2)
        extra = ""
        if p := PIPE_LOG.search(msg):
            n, s = int(p.group(1)), float(p.group(2))
            extra = f"{rate(n, s)} MB/s gz" if s else ""
        body.append((f"{at:.1f}", f"{at - last:.1f}", msg[:90], extra))
        last = at
    tail = max(0.0, run.seconds - last)
    body.append((f"{max(run.seconds, last):.1f}", f"{tail:.1f}", "(run_task returns)", ""))
    print_columns(("at s", "step s", "log line", ""), body)


def code_version() -> str:
    root = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              check=False)  # fmt: skip
        return done.stdout.strip()

    dirty = git("status", "--short", "panel/tasks", "provisioners")
    changed = " ".join(line[3:] for line in dirty.splitlines())
    head = git("log", "-1", "--format=%h %s")[:72]
    return head + (f" + uncommitted: {changed}" if changed else "")


# ----------------------------------------------------------------------------- main


@contextlib.contextmanager
def lab_for_bench() -> Iterator[Lab]:
    n = os.environ.get("KONBIT_LAB")
    if n is not None:
        lab = Lab(bridge=f"thkb{n}", subnet=f"10.77.{20 + int(n)}", veth_prefix=f"k{n}-")
    else:
        lab = Lab(bridge="thbl0", subnet="10.77.44", veth_prefix="bl-")
    with lab:
        lab.ensure_base()
        yield lab


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
