# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key: python/mypy#4717, as in panel.apps.tasks.)
"""The apps bench's world: the lab (web1, db1, bk1), the panel as subprocesses (``konbit
serve``, and ``konbit worker`` until the update, which runs in this process), the two
WordPress platforms, the sites, and a login over HTTP as a browser does it."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import io
import json
import os
import subprocess
import tarfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import (
    KONBIT,
    Api,
    konbit_init,
    konbit_serve,
    log,
    register_host,
    stop,
    wait_applied,
)
from common import lab_for_bench as common_lab

from panel.testhosts import Lab, TestHost
from provisioners.api import SiteFiles, offered
from provisioners.registry import load_plugins

DEFAULT_DEB_CACHE = Path("/var/tmp/konbit-bench-apps-debs")  # kept between runs
PHP = "8.2"  # the test hosts' PHP


def lab_for_bench() -> contextlib.AbstractContextManager[Lab]:
    """The bench's lab (``common.lab_for_bench``): its own bridge thba0, 10.77.48.0/24."""
    return common_lab("a", "10.77.48")


def start_hosts(lab: Lab, pub: str) -> dict[str, TestHost]:
    hosts = {
        "web1": lab.start("web1", roles=["web"], authorized_keys=[pub]),
        "db1": lab.start("db1", roles=["db"], authorized_keys=[pub]),
        "bk1": lab.start("bk1", roles=["backup"], authorized_keys=[pub]),
    }
    for h in hosts.values():
        h.wait_ready(180)
    return hosts


class LongApi(Api):
    """``Api`` with a longer timeout: a platform build answers once it is built."""

    def call(
        self, method: str, path: str, body: dict[str, Any] | None = None, timeout: float = 30
    ) -> Any:
        if timeout <= 30:
            return super().call(method, path, body)
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            data=json.dumps(body).encode() if body is not None else None,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=timeout) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else None


@dataclass
class PanelProcs:
    """``konbit serve`` and ``konbit worker`` on one data dir (SQLite); the worker can be
    stopped alone (the update is run in this process, instrumented)."""

    data: Path
    token: str = ""
    base: str = ""
    worker: subprocess.Popen[bytes] | None = None
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)

    def __enter__(self) -> PanelProcs:
        self.token = konbit_init(self.data)
        port, _proc = self._stack.enter_context(
            konbit_serve(self.data, self.data / "serve.log", None)
        )
        self.base = f"http://127.0.0.1:{port}"
        env = {**os.environ, "KONBIT_DATA_DIR": str(self.data)}
        env.pop("KONBIT_DATABASE_URL", None)
        logf = self._stack.enter_context(open(self.data / "worker.log", "wb"))
        self.worker = subprocess.Popen(
            [KONBIT, "worker"], env=env, stdout=logf, stderr=subprocess.STDOUT
        )
        return self

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop([self.worker], 15)
            self.worker = None

    def __exit__(self, *exc: object) -> None:
        self.stop_worker()
        self._stack.close()

    @property
    def key_path(self) -> Path:
        return self.data / "ssh" / "id_ed25519"


# -- platforms ----------------------------------------------------------------------------


def derived(
    api: LongApi, data: Path, base: dict[str, Any], name: str, edits: dict[str, str]
) -> dict[str, Any]:
    """A build derived from ``base``'s artifact by a real code change (``edits``: path ->
    PHP code put first in it), packed as a sysadmin's archive and made a platform: the
    steps of ``_derived`` in tests/integration/test_apps.py."""
    src = data / "platforms" / f"{base['sha256']}.tar.gz"
    out = data / f"{name}.tar.gz"
    with tarfile.open(src) as tin, tarfile.open(out, "w:gz") as tout:
        for member in tin.getmembers():
            f = tin.extractfile(member) if member.isfile() else None
            content = f.read() if f is not None else None
            path = member.name.removeprefix("./")
            if content is not None and path in edits:
                text = content.decode()
                if not text.startswith("<?php"):
                    raise RuntimeError(f"{path} of {base['name']} is not PHP")
                content = ("<?php " + edits[path] + "\n" + text[5:]).encode()
                member.size = len(content)
            tout.addfile(member, io.BytesIO(content) if content is not None else None)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    source = {"type": "archive", "path": str(out), "sha256": sha}
    got: dict[str, Any] = api.call("POST", "/platforms", {"name": name, "source": source}, 600)
    return got


# -- sites --------------------------------------------------------------------------------


@dataclass
class Site:
    """One WordPress site of the bench (its own account)."""

    id: int
    slug: str
    domain: str
    title: str
    document_root: str  # relative to the account's home (the API's)
    password: str = ""  # the admin's, from the install's answer
    database: str = ""


def make_sites(api: LongApi, web_id: int, first: int, count: int) -> list[Site]:
    """``count`` accounts, each with one domain and one PHP site, applied on web1."""
    sites = []
    for i in range(first, first + count):
        slug, domain = f"wp{i:03d}", f"wp{i:03d}.test"
        account = api.call(
            "POST", "/accounts",
            {"slug": slug, "name": f"Coop {i}", "email": f"contact@{domain}",
             "quotas": {"sites": 5, "databases": 5}},
        )  # fmt: skip
        api.call("POST", "/domains", {"account_id": account["id"], "name": domain})
        s = api.call("POST", "/sites", {"account_id": account["id"], "domain": domain, "php": PHP})
        sites.append(Site(s["id"], slug, domain, f"Coop {i} News", s["document_root"]))
    wait_applied(api, web_id, 300)
    return sites


def post_install(api: Api, site: Site, platform_id: int) -> tuple[int, str]:
    """POST the site's application: (task id, the admin password it answers)."""
    got = api.call(
        "POST", f"/sites/{site.id}/app",
        {"platform_id": platform_id, "title": site.title, "admin_email": "admin@example.org"},
    )  # fmt: skip
    return int(got["task_id"]), str(got["admin_password"])


def wait_tasks(api: Api, task_ids: list[int], timeout: float, poll: float = 0.2) -> dict[int, Any]:
    """Until every task ended; their last GET."""
    deadline = time.monotonic() + timeout
    done: dict[int, Any] = {}
    while len(done) < len(task_ids):
        for t in task_ids:
            if t not in done:
                got = api.call("GET", f"/tasks/{t}")
                if got["status"] in ("succeeded", "failed", "cancelled"):
                    done[t] = got
        if len(done) < len(task_ids):
            if time.monotonic() > deadline:
                raise RuntimeError(f"tasks not done after {timeout:.0f}s: "
                                   f"{sorted(set(task_ids) - set(done))}")  # fmt: skip
            time.sleep(poll)
    return done


def install_rest(api: Api, sites: list[Site], platform_id: int) -> float:
    """The sites not installed by the click measurement, installed through the worker one
    after the other (untimed set-up): seconds it took.  Not at once: each install's switch
    reloads the host's PHP-FPM, and a health check running at that moment gets a 502."""
    started = time.perf_counter()
    for s in sites:
        task_id, s.password = post_install(api, s, platform_id)
        done = wait_tasks(api, [task_id], 300)[task_id]
        if done["status"] != "succeeded":
            raise RuntimeError(f"install of {s.domain} {done['status']}: {done['error']}")
    return time.perf_counter() - started


def fill_database_names(api: Api, sites: list[Site]) -> None:
    for s in sites:
        app = api.call("GET", f"/sites/{s.id}/app")
        s.database = api.call("GET", f"/databases/{app['database_id']}")["name"]


def register_all(api: Api, hosts: dict[str, TestHost]) -> dict[str, int]:
    ids = {}
    for name, roles in (("web1", ["web"]), ("db1", ["db"]), ("bk1", ["backup"])):
        ids[name] = int(register_host(api, name, hosts[name], roles, nudge=True)["id"])
    return ids


# -- HTTP, as a browser -------------------------------------------------------------------


def http_request(
    address: str, name: str, path: str, form: dict[str, str] | None = None, cookie: str = ""
) -> tuple[int, list[tuple[str, str]], str]:
    """One request (a POST of ``form`` if given), no redirect followed: status, headers,
    body (``_http`` of tests/integration/test_apps.py)."""
    conn = http.client.HTTPConnection(address, 80, timeout=30)
    try:
        headers = {"Host": name, "Cookie": cookie}
        if form is None:
            conn.request("GET", path, headers=headers)
        else:
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            conn.request("POST", path, urllib.parse.urlencode(form), headers)
        with conn.getresponse() as response:
            return (
                response.status,
                response.getheaders(),
                response.read().decode("utf-8", "replace"),
            )
    finally:
        conn.close()


def wp_login(address: str, domain: str, user: str, password: str) -> bool:
    """WordPress's login form, as a browser posts it: a 302 with the logged-in cookie
    (``_wp_login`` of tests/integration/test_apps.py, which needs a TestHost and pytest)."""
    status, headers, _body = http_request(
        address, domain, "/wp-login.php",
        {"log": user, "pwd": password, "wp-submit": "Log In", "testcookie": "1"},
        cookie="wordpress_test_cookie=WP%20Cookie%20check",
    )  # fmt: skip
    cookies = " ".join(v for k, v in headers if k.lower() == "set-cookie")
    return status == 302 and "wordpress_logged_in_" in cookies


def serves(address: str, site: Site, header: tuple[str, str] | None) -> str:
    """'' when the site's front page is a 200 with its title (and ``header``, if given),
    else what is wrong."""
    try:
        code, headers, body = http_request(address, site.domain, "/")
    except OSError as exc:
        return f"{site.domain}: {exc}"
    if code != 200 or site.title not in body:
        return f"{site.domain}: {code} {body[:200]!r}"
    if header is not None and header not in headers:
        return f"{site.domain}: no {header[0]}: {header[1]} header"
    return ""


class Bystander:
    """A PHP site of web1 on no platform, its page (0.2 s of PHP, like a WordPress page)
    asked for again 0.1 s after each answer while a case runs (a visitor of another site
    of the host): every answer that was not its 200 counts."""

    def __init__(self, api: Api, web: TestHost, web_id: int) -> None:
        account = api.call(
            "POST", "/accounts",
            {"slug": "bystander", "name": "Bystander", "email": "contact@bystander.test",
             "quotas": {"sites": 1}},
        )  # fmt: skip
        api.call("POST", "/domains", {"account_id": account["id"], "name": "bystander.test"})
        site = api.call(
            "POST", "/sites", {"account_id": account["id"], "domain": "bystander.test", "php": PHP}
        )
        wait_applied(api, web_id, 120)
        root = offered(load_plugins(), SiteFiles).document_root("bystander", site["document_root"])
        web.exec(
            [
                "sh",
                "-c",
                'cat > "$1/b.php" && chown "$2" "$1/b.php"',
                "x",
                root,
                "bystander",
            ],
            input="<?php usleep(200000); echo 'bystander ', PHP_VERSION;\n",
            check=True,
        )
        self.address = web.address
        deadline = time.monotonic() + 10  # nginx's reload: its new workers take a moment
        while (code := self.ask()) != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"the bystander site answers {code}, not its 200")
            time.sleep(0.1)

    def ask(self) -> int:
        try:
            code, _headers, body = http_request(self.address, "bystander.test", "/b.php")
        except OSError:
            return 0
        return code if code != 200 or body.startswith("bystander ") else -1

    @contextlib.contextmanager
    def watching(self) -> Iterator[Counter[int]]:
        """Yields the counts of answers by status (0: no answer, -1: a 200 of another page)."""
        codes: Counter[int] = Counter()
        done = threading.Event()

        def loop() -> None:
            while not done.is_set():
                codes[self.ask()] += 1
                done.wait(0.1)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield codes
        finally:
            done.set()
            thread.join()


def ssh_accepted(host: TestHost) -> int:
    """SSH logins the host's sshd logged so far (busybox syslogd: /var/log/syslog): a count
    of connections made from outside this process's instrumentation."""
    count = 0
    for name in ("/var/log/syslog.0", "/var/log/syslog"):  # busybox rotates at 200 KB
        with contextlib.suppress(OSError):
            count += host.path(name).read_text(errors="replace").count("Accepted publickey")
    return count


def keep_logs(data: Path) -> None:
    for name in ("worker.log", "serve.log"):
        src = data / name
        if src.is_file():
            kept = Path(f"/var/tmp/konbit-bench-apps-{name}")
            kept.write_bytes(src.read_bytes())
            log(f"{name} kept as {kept}")
