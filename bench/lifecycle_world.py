"""The lifecycle bench's world: the site's files and database dump made up, the in-process
panel that starts and runs tasks, the five test hosts and the accounts set up on them."""

from __future__ import annotations

import argparse
import os
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import Cpu, log, metered, panel_key

from panel.core.db import Database
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.hosts.reconcile import reconcile_host
from panel.tasks.run.dispatch import run_task
from panel.testhosts import Lab, Role, TestHost, WebServer
from provisioners.api import SiteFiles, offered
from provisioners.registry import load_plugins
from provisioners.transport import Target

MiB = 1 << 20


SMALL = 4096


PIPE_LOG = re.compile(r"(\d+) bytes in ([\d.]+)s")


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
