"""The ``konbit`` command: local administration and the REST client, against a real server."""

from __future__ import annotations

import gc
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import host_key


def konbit(
    *args: str, env: dict[str, str], stdin: str | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panel.cli", *args],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def panel_env(tmp_path: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONBIT_")}
    env["KONBIT_DATA_DIR"] = str(tmp_path / "data")
    return env


@pytest.fixture(scope="session")
def initialized(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One ``konbit init`` for the session (1.6 s: a fresh schema, every migration): its
    data directory and admin token, copied by the tests that only need an initialised
    panel. ``test_init_prints_a_token_alone_and_can_run_again`` runs its own."""
    data = tmp_path_factory.mktemp("initialized") / "data"
    env = {k: v for k, v in os.environ.items() if not k.startswith("KONBIT_")}
    init = konbit("init", env={**env, "KONBIT_DATA_DIR": str(data)})
    assert init.returncode == 0, init.stderr
    return data, init.stdout.strip()


@pytest.fixture
def initialized_env(
    panel_env: dict[str, str], initialized: tuple[Path, str]
) -> tuple[dict[str, str], str]:
    """``panel_env`` with a data directory as ``konbit init`` leaves it, and its token."""
    data, token = initialized
    shutil.copytree(data, panel_env["KONBIT_DATA_DIR"])
    return panel_env, token


@pytest.fixture
def server(initialized_env: tuple[dict[str, str], str]) -> Iterator[tuple[dict[str, str], str]]:
    panel_env, token = initialized_env
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # The toy plugin is installed for the server too, as for the in-process suite.
    plugins = str(Path(__file__).resolve().parent / "plugins")
    path = os.pathsep.join(p for p in (plugins, panel_env.get("PYTHONPATH")) if p)
    proc = subprocess.Popen(
        [sys.executable, "-m", "panel.cli", "serve", "--port", str(port)],
        env={**panel_env, "PYTHONPATH": path},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        else:
            raise AssertionError("konbit serve did not start")
        yield {**panel_env, "KONBIT_URL": url, "KONBIT_TOKEN": token}, token
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_init_prints_a_token_alone_and_can_run_again(panel_env: dict[str, str]) -> None:
    first = konbit("init", env=panel_env)
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().startswith("kb_") and len(first.stdout.split()) == 1
    assert "admin token" in first.stderr
    again = konbit("init", env=panel_env)
    assert again.returncode == 0 and again.stdout.strip() != first.stdout.strip()


def test_token_create_and_admin_create(initialized_env: tuple[dict[str, str], str]) -> None:
    panel_env, _ = initialized_env
    made = konbit(
        "admin",
        "create",
        "--email",
        "ops@provider.test",
        "--password-stdin",
        env=panel_env,
        stdin="long enough password\n",
    )
    assert made.returncode == 0, made.stderr
    tok = konbit(
        "token",
        "create",
        "--user",
        "ops@provider.test",
        "--scope",
        "admin",
        "--scope",
        "billing",
        "--name",
        "ci",
        "--expires-days",
        "30",
        env=panel_env,
    )
    assert tok.returncode == 0, tok.stderr
    assert tok.stdout.count("\n") == 1 and tok.stdout.startswith("kb_")
    bad = konbit(
        "token",
        "create",
        "--user",
        "ops@provider.test",
        "--scope",
        "everything",
        "--name",
        "x",
        env=panel_env,
    )
    assert bad.returncode != 0 and "admin" in bad.stderr


def test_client_commands_drive_the_api(server: tuple[dict[str, str], str]) -> None:
    env, _ = server
    r = konbit("accounts", "create", "slug=acme", "name=Acme", "email=hello@acme.test", env=env)
    assert r.returncode == 0, r.stderr
    assert "acme" in r.stdout
    r = konbit("accounts", "list", "--json", env=env)
    accounts = json.loads(r.stdout)
    assert [a["slug"] for a in accounts] == ["acme"]
    r = konbit(
        "host",
        "add",
        "web1",
        "--address",
        "10.77.0.9",
        "--role",
        "web",
        "--host-key",
        host_key(),
        env=env,
    )
    assert r.returncode == 0, r.stderr
    assert "SHA256:" in r.stdout
    r = konbit("host", "add", "web2", "--address", "10.77.0.10", "--role", "web", env=env)
    assert r.returncode == 2 and "never trusted on first use" in r.stderr
    acme_id = str(accounts[0]["id"])
    assert (
        konbit("domains", "create", f"account_id={acme_id}", "name=acme.test", env=env).returncode
        == 0
    )
    r = konbit(
        "sites",
        "create",
        f"account_id={acme_id}",
        "domain=www.acme.test",
        'aliases=["acme.test"]',
        env=env,
    )
    assert r.returncode == 0, r.stderr
    r = konbit("sites", "list", env=env)
    assert "www.acme.test" in r.stdout and "pending" in r.stdout
    r = konbit("sites", "create", f"account_id={acme_id}", "domain=a;b.acme.test", env=env)
    assert r.returncode == 1 and "error 422" in r.stderr and "domain" in r.stderr


def test_client_without_token_says_what_to_do(panel_env: dict[str, str]) -> None:
    r = konbit("sites", "list", env=panel_env)
    assert r.returncode == 2 and "KONBIT_TOKEN" in r.stderr


def test_many_clients_at_once_do_not_stall_the_server(server: tuple[dict[str, str], str]) -> None:
    """120 clients used to deadlock it: threads waiting on connections held by requests
    waiting on threads (found by bench/api_lists.py)."""
    import concurrent.futures
    import urllib.request

    env, token = server
    _seed_sites(env["KONBIT_DATA_DIR"], 3000)

    def fetch(_: int) -> int:
        request = urllib.request.Request(
            f"{env['KONBIT_URL']}/api/v1/sites?limit=200",
            headers={"Authorization": f"Bearer {token}"},
        )
        with urllib.request.urlopen(request, timeout=60) as response:
            return int(response.status)

    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=120) as pool:
        codes = list(pool.map(fetch, range(360)))
    assert codes == [200] * 360
    assert time.monotonic() - started < 60


def _seed_sites(data_dir: str, count: int) -> None:
    """Rows straight into the server's database: enough work per request to pile up."""
    from sqlalchemy import insert

    from panel.accounts.models import Account
    from panel.core.db import Database, utcnow
    from panel.domains.models import Domain
    from panel.hosts.models import Host
    from panel.sites.models import Site

    db = Database(f"sqlite:///{data_dir}/konbit.sqlite3")
    now = utcnow()
    with db.session() as s:
        host = Host(name="seed", address="10.0.0.1", host_key=host_key(), roles=["web"])
        account = Account(slug="seed", name="Seed", email="a@seed.test", quotas={})
        s.add_all([host, account])
        s.flush()
        domain = Domain(account_id=account.id, name="seed.test", status="active")
        s.add(domain)
        s.flush()
        s.execute(
            insert(Site),
            [
                {
                    "account_id": account.id,
                    "domain_id": domain.id,
                    "host_id": host.id,
                    "domain": f"s{i}.seed.test",
                    "document_root": f"www/s{i}",
                    "status": "pending",
                    "https": "off",
                    "enabled": True,
                    "version": 1,
                    "created_at": now,
                    "updated_at": now,
                }
                for i in range(count)
            ],
        )
        s.commit()
    db.engine.dispose()


def _set_task(data_dir: str, task_id: int, **values: object) -> None:
    """Play the worker: write the task's row in the server's database."""
    from sqlalchemy import update

    from panel.core.db import Database
    from panel.tasks.models import Task

    db = Database(f"sqlite:///{data_dir}/konbit.sqlite3")
    with db.session() as s:
        s.execute(update(Task).where(Task.id == task_id).values(**values))
        s.commit()
    db.engine.dispose()


def test_lifecycle_commands_start_and_follow_tasks(server: tuple[dict[str, str], str]) -> None:
    env, _ = server
    from typer.testing import CliRunner

    from panel.cli.main import app

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        """In the test's process: a subprocess per command costs 0.7 s of imports.  `Api`
        leaves its connection to the exit of the process, gone here with the command."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            r = CliRunner().invoke(app, list(args), env=env)
            gc.collect()
        return subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)

    def ok(*args: str) -> str:
        r = run(*args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    def new_id(*args: str) -> str:
        return str(json.loads(ok(*args, "--json"))[0]["id"])

    account = new_id("accounts", "create", "slug=acme", "name=Acme", "email=hello@acme.test")
    ok("domains", "create", f"account_id={account}", "name=acme.test")
    hosts = {}
    for name, role, address in (
        ("web1", "web", "10.77.0.9"),
        ("bk1", "backup", "10.77.0.11"),
        ("db1", "db", "10.77.0.12"),
    ):
        hosts[role] = new_id(
            "host", "add", name, "--address", address, "--role", role, "--host-key", host_key()
        )
    site = new_id("sites", "create", f"account_id={account}", "domain=www.acme.test")

    out = ok("backup", site)
    assert out.split()[:3] == ["id", "kind", "status"] and "backup" in out and "queued" in out
    task = str(json.loads(ok("tasks", "list", "--json"))[0]["id"])
    assert (
        ok("backups", "list").strip()
        == "id  site_id  domain  size_bytes  databases  scheduled  created_at"
    )
    assert json.loads(ok("backups", "list", "--site", site, "--json")) == []

    out = ok("schedule", site, "daily", "--hour", "4", "--json")
    assert json.loads(out)[0] | {"next_run_at": None} == {
        "site_id": int(site),
        "frequency": "daily",
        "hour": 4,
        "weekday": 0,
        "next_run_at": None,
        "last_task_id": None,
    }
    assert "daily" in ok("schedule", site)
    assert "no scheduled backups" in ok("schedule", site, "off")
    r = run("schedule", site)
    assert r.returncode == 1 and "error 404" in r.stderr

    r = run("clone", site, "a;b.acme.test")
    assert r.returncode == 1 and "error 422" in r.stderr and "domain" in r.stderr
    r = run("move", "site", site, "--host", hosts["db"])
    assert r.returncode == 1 and "error 422" in r.stderr and "'web' role" in r.stderr
    assert "Bring the panel database" in ok("migrate", "--help")  # still the schema upgrade

    # `konbit serve` runs no worker: the task stays queued.
    r = run("tasks", "wait", task, "--timeout", "0.5")
    assert r.returncode == 1 and "still queued" in r.stderr and "konbit worker" in r.stderr

    _set_task(
        env["KONBIT_DATA_DIR"],
        int(task),
        status="failed",
        log="[    0.1s] connecting to bk1\n[    3.0s] failed: bk1 unreachable\n",
        error="bk1 unreachable",
    )
    r = run("tasks", "wait", task)
    assert r.returncode == 1 and "connecting to bk1" in r.stdout
    assert f"task {task} (backup) failed: bk1 unreachable" in r.stderr

    # --wait follows the task it started, printing the log as it grows (in a process of
    # its own, while this one plays the worker).
    r = run("backup", site, "--database", "nope", "--wait")
    assert r.returncode == 1 and "error 422" in r.stderr and "nope" in r.stderr
    waiting = subprocess.Popen(
        [sys.executable, "-m", "panel.cli", "backup", site, "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while (second := str(json.loads(ok("tasks", "list", "--json"))[0]["id"])) == task:
            assert time.monotonic() < deadline, "konbit backup --wait queued no task"
            time.sleep(0.1)
        _set_task(env["KONBIT_DATA_DIR"], int(second), status="running", log="[ 0.1s] files\n")
        time.sleep(1)
        _set_task(
            env["KONBIT_DATA_DIR"],
            int(second),
            status="succeeded",
            log="[ 0.1s] files\n[ 0.9s] done\n",
            result={"backup_id": 1},
        )
        stdout, stderr = waiting.communicate(timeout=15)
    finally:
        waiting.kill()
    assert waiting.returncode == 0, stderr
    assert "queued" in stdout and stdout.count("files") == 1 and "done" in stdout
    assert f'task {second} (backup) succeeded {{"backup_id": 1}}' in stdout


def _in_process(
    env: dict[str, str],
) -> tuple[Callable[..., subprocess.CompletedProcess[str]], Callable[..., str]]:
    """The CLI run in this process (typer's runner) against ``env``'s server: ``run``
    answers like a subprocess, ``ok`` asserts success and gives stdout."""
    from typer.testing import CliRunner

    from panel.cli.main import app

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            r = CliRunner().invoke(app, list(args), env=env)
            done = subprocess.CompletedProcess(args, r.exit_code, r.stdout, r.stderr)
            del r  # its traceback holds the command's client: closed here, not later
            gc.collect()
        return done

    def ok(*args: str) -> str:
        r = run(*args)
        assert r.returncode == 0, r.stderr
        return r.stdout

    return run, ok


def test_objects_commands_drive_plugin_kinds(server: tuple[dict[str, str], str]) -> None:
    env, _ = server
    run, ok = _in_process(env)

    def made(*args: str) -> dict[str, object]:
        return json.loads(ok(*args, "--json"))[0]  # type: ignore[no-any-return]

    kinds = {k["name"]: k for k in json.loads(ok("objects", "kinds", "--json"))}
    assert kinds["toy_note"] | {"fields": None} == {
        "name": "toy_note",
        "title": "toy note",
        "role": "toy",
        "placement": "host",
        "fields": None,
    }
    assert kinds["toy_note"]["fields"] == ["text", "mode"]
    assert kinds["toy_banner"]["placement"] == "role"
    assert kinds["sftp_login"]["placement"] == "site"
    table = [line.split() for line in ok("objects", "kinds").splitlines()]
    assert ["toy_banner", "toy", "banner", "toy", "role", "text"] in table

    acme = made("accounts", "create", "slug=acme", "name=Acme", "email=hello@acme.test")
    beta = made("accounts", "create", "slug=beta", "name=Beta", "email=hello@beta.test")
    host = made(
        "host", "add", "toy1", "--address", "10.77.0.20", "--role", "toy", "--host-key", host_key()
    )

    # A text field keeps "123" as text; a bad value is the API's 422, naming the field.
    note = made(
        "objects",
        "create",
        "toy_note",
        "--account",
        str(acme["id"]),
        "--name",
        "n1",
        "--spec",
        "text=123",
        "--spec",
        "mode=private",
    )
    assert note["spec"] == {"text": "123", "mode": "private"}
    assert (note["host_id"], note["status"]) == (host["id"], "pending")
    r = run(
        "objects",
        "create",
        "toy_note",
        "--account",
        str(acme["id"]),
        "--name",
        "n2",
        "--spec",
        'text=a "quote"',
    )
    assert r.returncode == 1 and "error 422" in r.stderr and "spec.text" in r.stderr
    r = run(
        "objects",
        "create",
        "toy_banner",
        "--account",
        str(acme["id"]),
        "--name",
        "b1",
        "--host",
        str(host["id"]),
        "--spec-json",
        '{"text": "Hi"}',
    )
    assert r.returncode == 1 and "leave host_id out" in r.stderr
    banner = made(
        "objects",
        "create",
        "toy_banner",
        "--account",
        str(beta["id"]),
        "--name",
        "b1",
        "--spec-json",
        '{"text": "Hi"}',
    )
    assert (banner["host_id"], banner["spec"]) == (None, {"text": "Hi"})
    r = run("objects", "create", "toy_note", "--account", "1", "--name", "x", "--spec", "nokey")
    assert r.returncode == 2 and "is not key=value" in r.stderr

    out = ok("objects", "list", "toy_note")
    assert out.splitlines()[0].split() == list(
        ("id", "account_id", "name", "host_id", "site_id", "status", "status_reason", "spec")
    )
    assert "n1" in out and 'text="123" mode="private"' in out and "pending" in out
    assert (
        json.loads(ok("objects", "list", "toy_banner", "--account", str(acme["id"]), "--json"))
        == []
    )
    shown = json.loads(ok("objects", "show", "toy_note", str(note["id"])))
    assert shown["name"] == "n1" and shown["account_id"] == acme["id"]

    # An update changes the fields given and keeps the others.
    changed = made("objects", "update", "toy_note", str(note["id"]), "--spec", "text=Changed")
    assert changed["spec"] == {"text": "Changed", "mode": "private"}
    assert changed["version"] > note["version"]
    replaced = made(
        "objects", "update", "toy_note", str(note["id"]), "--replace", "--spec", "text=Again"
    )
    assert replaced["spec"] == {"text": "Again", "mode": "public"}
    r = run("objects", "update", "toy_note", str(note["id"]), "--spec", "mode=secret")
    assert r.returncode == 1 and "error 422" in r.stderr and "spec.mode" in r.stderr

    # A kind attached to a site: --site; a write-only password is never shown back.
    made(
        "host", "add", "web1", "--address", "10.77.0.21", "--role", "web", "--host-key", host_key()
    )
    ok("domains", "create", f"account_id={acme['id']}", "name=acme.test")
    site = made("sites", "create", f"account_id={acme['id']}", "domain=www.acme.test")
    login = made(
        "objects",
        "create",
        "sftp_login",
        "--account",
        str(acme["id"]),
        "--name",
        "l1",
        "--site",
        str(site["id"]),
        "--spec",
        "password=1234567890",
    )
    assert login["site_id"] == site["id"] and login["spec"]["scope"] == "site"
    assert "password" not in login["spec"] and "password_hash" not in login["spec"]
    key = host_key()
    login = made(
        "objects",
        "update",
        "sftp_login",
        str(login["id"]),
        "--spec",
        f"ssh_keys={key}",
        "--spec",
        "scope=home",
    )
    assert login["spec"]["ssh_keys"] == [key] and login["spec"]["scope"] == "home"
    r = run(
        "objects",
        "create",
        "sftp_login",
        "--account",
        str(acme["id"]),
        "--name",
        "l2",
        "--spec",
        "password=1234567890",
    )
    assert r.returncode == 1 and "error 422" in r.stderr and "site" in r.stderr
    assert "1234567890" not in ok("objects", "list", "sftp_login")

    gone = made("objects", "delete", "toy_note", str(note["id"]))
    assert gone["status"] == "deleting"
    r = run("objects", "list", "nope")
    assert r.returncode == 1 and "error 404" in r.stderr
    r = run("objects", "show", "toy_banner", str(note["id"]))  # the id of another kind
    assert r.returncode == 1 and "error 404" in r.stderr


def test_objects_spec_values_follow_the_kinds_fields() -> None:
    from pydantic import BaseModel

    from panel.cli.objects import parse_spec
    from provisioners.api import ObjectKind

    class Spec(BaseModel):
        label: str
        size: int = 1
        on: bool = False
        names: list[str] = []
        note: str | None = None

    kind = ObjectKind("thing", "toy", spec=Spec)
    got = parse_spec(
        ["label=007", "size=12", "on=true", "names=a, b", "note=null", "other=[1, 2]"], None, kind
    )
    assert got == {
        "label": "007",
        "size": 12,
        "on": True,
        "names": ["a", "b"],
        "note": "null",
        "other": [1, 2],
    }
    assert parse_spec(['names=["x,y"]'], '{"size": 3}', kind) == {"size": 3, "names": ["x,y"]}
    assert parse_spec(["label=7"], None, None) == {"label": 7}  # unknown here: JSON first


def test_cron_commands_run_a_job_now_and_read_its_runs(
    server: tuple[dict[str, str], str],
) -> None:
    env, _ = server
    run, ok = _in_process(env)

    def new_id(*args: str) -> str:
        return str(json.loads(ok(*args, "--json"))[0]["id"])

    account = new_id("accounts", "create", "slug=acme", "name=Acme", "email=hello@acme.test")
    ok("domains", "create", f"account_id={account}", "name=acme.test")
    with socket.socket() as s:  # a port nothing listens on: the host refuses at once
        s.bind(("127.0.0.1", 0))
        port = str(s.getsockname()[1])
    new_id(
        "host", "add", "web1", "--address", "127.0.0.1", "--port", port, "--role", "web",
        "--host-key", host_key(),
    )  # fmt: skip
    site = new_id("sites", "create", f"account_id={account}", "domain=www.acme.test")
    job = new_id(
        "objects", "create", "cron_job", "--account", account, "--name", "nightly",
        "--site", site, "--spec", "schedule=@daily", "--spec", "command=php cron.php",
    )  # fmt: skip

    out = ok("cron", "run", job)
    assert out.split()[:3] == ["id", "kind", "status"] and "cron-run" in out and "queued" in out
    task = json.loads(ok("tasks", "list", "--json"))[0]
    assert (task["kind"], task["params"]["cron_job_id"]) == ("cron-run", int(job))
    r = run("cron", "run", job)
    assert r.returncode == 1 and "error 409" in r.stderr and f"Task {task['id']}" in r.stderr
    r = run("cron", "run", "999999")
    assert r.returncode == 1 and "error 404" in r.stderr

    # The runs are read from the host: one that does not answer is a clear error, no table.
    r = run("cron", "runs", job)
    assert r.returncode == 1 and r.stdout == ""
    assert "error 503: web1 did not answer" in r.stderr and "try again later" in r.stderr

    # --wait follows the run's task to its end: the job's output, and its failure.
    _set_task(env["KONBIT_DATA_DIR"], task["id"], status="succeeded")
    waiting = subprocess.Popen(
        [sys.executable, "-m", "panel.cli", "cron", "run", job, "--wait"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 15
        while (second := json.loads(ok("tasks", "list", "--json"))[0]["id"]) == task["id"]:
            assert time.monotonic() < deadline, "konbit cron run --wait queued no task"
            time.sleep(0.1)
        _set_task(
            env["KONBIT_DATA_DIR"],
            second,
            status="failed",
            log="[ 0.1s] exit code 3 after 0.2 s\n[ 0.2s] output:\nno such file\n",
            error="the job exited with code 3; its output is above",
        )
        stdout, stderr = waiting.communicate(timeout=15)
    finally:
        waiting.kill()
    assert waiting.returncode == 1, stderr
    assert "queued" in stdout and "no such file" in stdout
    assert f"task {second} (cron-run) failed: the job exited with code 3" in stderr


def test_platform_and_app_commands(server: tuple[dict[str, str], str], tmp_path: Path) -> None:
    from tests.api.test_apps import _archive

    env, _ = server
    run, ok = _in_process(env)
    source = _archive(tmp_path)
    create = ("platforms", "create", "wp-619", "--archive", source["path"])
    made = json.loads(ok(*create, "--sha256", source["sha256"], "--json"))[0]
    assert (made["app"], made["version"], made["auto_update"]) == ("wordpress", "6.1.9", False)
    out = ok("platforms", "auto", str(made["id"]), "--weekday", "6", "--hour", "2")
    assert out.split()[:3] == ["id", "name", "auto_update"] and "True" in out
    got = json.loads(ok("platforms", "list", "--json"))[0]
    assert (got["auto_update"], got["window_weekday"], got["window_hour"]) == (True, 6, 2)
    assert "False" in ok("platforms", "auto", str(made["id"]), "--off")
    r = run("platforms", "auto", str(made["id"]), "--hour", "24")
    assert r.returncode == 2 and "less than or equal to 23" in r.stderr
    task = json.loads(ok("apps", "scan", "--json"))[0]
    assert (task["kind"], task["status"]) == ("app-scan", "queued")
    assert ok("apps", "inventory", "--csv").splitlines() == [
        "site_id,domain,account,app,version,platform,newest_version,behind,scanned_at"
    ]
    assert json.loads(ok("apps", "inventory", "--behind", "--json")) == []
    status = json.loads(ok("apps", "status", "--json"))
    assert status == [
        {"app": "wordpress", "newest_platform": "wp-619", "newest_version": "6.1.9",
         "sites": 0, "on_platforms": 0, "by_hand": 0, "behind": 0},
    ]  # fmt: skip
