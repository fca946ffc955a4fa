"""The test-host harness itself: real Debian hosts in namespaces, reached over SSH and HTTP.

Needs root (the project's test command runs as root); builds the base layer on first use
(about 80 s, then reused from /var/tmp/konbit-testhosts).
"""

from __future__ import annotations

import base64
import http.client
import io
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import paramiko
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from panel.testhosts import Lab, TestHost

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]


def _worker_index() -> int:
    """pytest-xdist worker number (0 without xdist): one bridge and subnet per worker."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    return int(worker.removeprefix("gw") or 0) % 40


def _require_machine() -> None:
    """Fail loudly, never skip: the project's test command runs as root on Debian."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not running as root")
    for tool in ("unshare", "nsenter", "ip"):
        if shutil.which(tool) is None:
            problems.append(f"{tool} missing")
    if problems:
        pytest.fail("test hosts cannot run here: " + ", ".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    _require_machine()
    n = _worker_index()
    with Lab(bridge=f"thit{n}", subnet=f"10.77.{100 + n}", veth_prefix=f"ti{n}-") as lab:
        lab.ensure_base()
        yield lab


@pytest.fixture(scope="module")
def client_key() -> tuple[paramiko.Ed25519Key, str]:
    """A fresh ed25519 client key and its authorized_keys line."""
    pem = Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    key = paramiko.Ed25519Key.from_private_key(io.StringIO(pem.decode()))
    return key, f"{key.get_name()} {key.get_base64()} konbit-test"


def _ssh(host: TestHost, key: paramiko.PKey, pinned: str | None = None) -> paramiko.SSHClient:
    """Connect as root with the host key pinned: an unknown key is refused, never added."""
    client = paramiko.SSHClient()
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    keytype, b64 = (pinned or host.host_key).split()[:2]
    assert keytype == "ssh-ed25519"
    client.get_host_keys().add(
        host.address, keytype, paramiko.Ed25519Key(data=base64.b64decode(b64))
    )
    client.connect(
        host.address,
        port=host.ssh_port,
        username="root",
        pkey=key,
        allow_agent=False,
        look_for_keys=False,
        timeout=5,
    )
    return client


def _run(client: paramiko.SSHClient, command: str) -> tuple[int, str, str]:
    _, stdout, stderr = client.exec_command(command, timeout=30)
    out, err = stdout.read().decode(), stderr.read().decode()
    return stdout.channel.recv_exit_status(), out, err


def _http_get(address: str, path: str, host_header: str, within: float = 2.0) -> tuple[int, str]:
    """GET, retried for ``within`` seconds: nginx reloads asynchronously."""
    deadline = time.monotonic() + within
    while True:
        conn = http.client.HTTPConnection(address, 80, timeout=2)
        try:
            conn.request("GET", path, headers={"Host": host_header})
            resp = conn.getresponse()
            status, body = resp.status, resp.read().decode()
        except OSError:
            status, body = 0, ""
        finally:
            conn.close()
        if status == 200 or time.monotonic() > deadline:
            return status, body
        time.sleep(0.05)


def _ssh_banner(address: str) -> bytes:
    with socket.create_connection((address, 22), timeout=2) as sock:
        return sock.recv(64)


VHOST = """\
server {
    listen 80;
    server_name demo.test;
    root /var/www/demo.test;
    index index.html;
    location ~ \\.php$ {
        include snippets/fastcgi-php.conf;
        fastcgi_pass unix:/run/php/php8.2-fpm.sock;
    }
}
"""


def test_web_and_db_hosts(lab: Lab, client_key: tuple[paramiko.Ed25519Key, str]) -> None:
    key, pub = client_key
    web = lab.start("web1", roles=["web"], authorized_keys=[pub])
    db = lab.start("db1", roles=["db"], authorized_keys=[pub])
    try:
        web.wait_ready(timeout=30)
        db.wait_ready(timeout=60)
        assert web.address != db.address

        client = _ssh(web, key)
        try:
            assert _run(client, "hostname")[1].strip() == "web1"
            rc, _, err = _run(client, "nginx -t")
            assert rc == 0, err
            sftp = client.open_sftp()
            _run(client, "mkdir -p /var/www/demo.test")
            with sftp.open("/var/www/demo.test/hello.txt", "w") as fh:
                fh.write("hello from demo.test\n")
            with sftp.open("/var/www/demo.test/info.php", "w") as fh:
                fh.write("<?php echo 'php ', PHP_VERSION, ' on ', gethostname();\n")
            with sftp.open("/etc/nginx/sites-available/demo.test", "w") as fh:
                fh.write(VHOST)
            sftp.close()
            rc, out, err = _run(
                client,
                "ln -s /etc/nginx/sites-available/demo.test /etc/nginx/sites-enabled/"
                " && nginx -t && systemctl reload nginx",
            )
            assert rc == 0, out + err
            rc, out, _ = _run(client, "systemctl is-active php8.2-fpm")
            assert (rc, out.strip()) == (0, "active")
            # Names of the lab's hosts resolve through /etc/hosts.
            assert _run(client, "getent hosts db1.test")[1].split()[0] == db.address
        finally:
            client.close()

        status, body = _http_get(web.address, "/hello.txt", "demo.test")
        assert (status, body) == (200, "hello from demo.test\n")
        status, body = _http_get(web.address, "/info.php", "demo.test")
        assert status == 200 and body.startswith("php 8.2.") and body.endswith(" on web1"), body
        assert web.exec(["pgrep", "-f", "php-fpm: master"]).returncode == 0

        answer = db.exec(["mariadb", "-N", "-B", "-e", "SELECT 1"])
        assert (answer.returncode, answer.stdout.strip()) == (0, "1"), answer.stderr
        answer = db.exec(["runuser", "-u", "postgres", "--", "psql", "-tAc", "SELECT 1"])
        assert (answer.returncode, answer.stdout.strip()) == (0, "1"), answer.stderr
        # db1 does not serve web1's site: hosts share nothing but the base.
        assert not db.path("/var/www/demo.test").exists()
    finally:
        lab.stop_all()

    for host in (web, db):
        assert not host.running
        assert not host.namespace_alive()
        assert not Path(f"/sys/class/net/{host.veth}").exists()
        assert not host.hostdir.exists()


def test_wrong_host_key_is_refused(lab: Lab, client_key: tuple[paramiko.Ed25519Key, str]) -> None:
    key, pub = client_key
    web = lab.start("web1", roles=[], authorized_keys=[pub])
    other = lab.start("web2", roles=[], authorized_keys=[pub])
    try:
        web.wait_ready()
        other.wait_ready()
        assert web.host_key != other.host_key  # every fresh host has its own key
        with pytest.raises(paramiko.BadHostKeyException):
            _ssh(web, key, pinned=other.host_key)
    finally:
        lab.stop_all()


def test_stopped_host_comes_back_with_its_files(
    lab: Lab, client_key: tuple[paramiko.Ed25519Key, str]
) -> None:
    key, pub = client_key
    web = lab.start("web3", roles=["web"], authorized_keys=[pub])
    try:
        web.wait_ready()
        host_key, address = web.host_key, web.address
        web.exec(["sh", "-c", "echo kept > /var/www/html/kept.txt"], check=True)
        web.stop(keep=True)
        assert not web.namespace_alive()

        again = lab.start("web3", roles=["web"], authorized_keys=[pub], reuse=True)
        again.wait_ready()
        assert (again.host_key, again.address) == (host_key, address)
        assert again.path("/var/www/html/kept.txt").read_text() == "kept\n"
        client = _ssh(again, key)  # the pinned key is still valid
        client.close()
    finally:
        lab.stop_all()


def test_four_role_hosts(lab: Lab, client_key: tuple[paramiko.Ed25519Key, str]) -> None:
    _, pub = client_key
    started = time.monotonic()
    hosts = [
        lab.start("web1", roles=["web"], authorized_keys=[pub]),
        lab.start("web2", roles=["web"], authorized_keys=[pub], web_server="apache2"),
        lab.start("mail1", roles=["mail"], authorized_keys=[pub]),
        lab.start("db1", roles=["db"], authorized_keys=[pub]),
    ]
    try:
        for host in hosts:
            host.wait_ready(timeout=60)
        ready = time.monotonic() - started
        assert len({h.address for h in hosts}) == 4
        for host in hosts:
            assert _ssh_banner(host.address).startswith(b"SSH-2.0-OpenSSH")
        assert hosts[1].exec(["pgrep", "-x", "apache2"]).returncode == 0
        assert hosts[1].exec(["pgrep", "-x", "nginx"]).returncode != 0
        with socket.create_connection((hosts[2].address, 25), timeout=2) as sock:
            assert sock.recv(64).startswith(b"220 mail1.test")
        with socket.create_connection((hosts[2].address, 143), timeout=2) as sock:
            assert b"Dovecot" in sock.recv(128)
        print(f"\nfour role hosts ready in {ready:.2f} s")
    finally:
        started = time.monotonic()
        lab.stop_all()
        print(f"four hosts stopped in {time.monotonic() - started:.2f} s")
    assert not any(h.namespace_alive() for h in hosts)


CHILD = """
import sys, time
from panel.testhosts import Lab
lab = Lab(bridge=sys.argv[1], subnet=sys.argv[2], veth_prefix=sys.argv[3])
host = lab.start("orphan")
host.wait_ready()
print(host.pid, flush=True)
time.sleep(120)
"""


def _alive(pid: int) -> bool:
    """Running, not a zombie waiting for this machine's PID 1 to reap it."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in status


def test_killed_run_leaves_no_host(lab: Lab) -> None:
    n = _worker_index()
    bridge, subnet, prefix = f"thik{n}", f"10.77.{150 + n}", f"tk{n}-"
    child = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(CHILD), bridge, subnet, prefix],
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        assert child.stdout is not None
        pid = int(child.stdout.readline())
        assert Path(f"/proc/{pid}").exists()
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=5)
        deadline = time.monotonic() + 2
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert not _alive(pid), "host outlived the killed process"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
        if child.stdout is not None:
            child.stdout.close()
        subprocess.run(["ip", "link", "del", bridge], capture_output=True, check=False)
