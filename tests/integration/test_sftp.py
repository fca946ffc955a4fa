"""Members' SFTP logins end to end: a real SFTP client (paramiko) against ProFTPD on a
test web host, reconciled by the panel from ``/api/v1/objects/sftp_login``."""

from __future__ import annotations

import base64
import io
import socket
from collections.abc import Iterator
from typing import Any

import paramiko
import pytest

from panel.testhosts.lab import Lab, TestHost
from tests.integration.conftest import Panel, wait_for

pytestmark = pytest.mark.integration

PORT = 2222


@pytest.fixture(scope="module")
def sftp1(lab: Lab, panel_key: str) -> Iterator[TestHost]:
    host = lab.start("sftp1", roles=["web"], authorized_keys=[panel_key])
    host.wait_ready(60)
    yield host
    host.stop()


def sftp_host_key(host: TestHost) -> paramiko.PKey:
    pub = host.exec(["cat", "/etc/konbit/private/sftp/host_ecdsa_key.pub"], check=True).stdout
    kind, data = pub.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def connect(
    host: TestHost, user: str, *, password: str | None = None, key: paramiko.PKey | None = None
) -> paramiko.SFTPClient:
    """Log in as a member's client would, pinning the host's SFTP key (no trust on first use)."""
    sock = socket.create_connection((host.address, PORT), timeout=5)
    transport = paramiko.Transport(sock)
    transport.start_client(timeout=5)
    expected = sftp_host_key(host)
    if transport.get_remote_server_key() != expected:
        transport.close()
        raise AssertionError("the SFTP host key is not the one the host made")
    try:
        if key is not None:
            transport.auth_publickey(user, key)
        else:
            transport.auth_password(user, password or "")
    except paramiko.AuthenticationException:
        transport.close()
        raise
    return paramiko.SFTPClient.from_transport(transport)  # type: ignore[return-value]


def refused(host: TestHost, user: str, **how: Any) -> bool:
    try:
        connect(host, user, **how).close()
    except (paramiko.AuthenticationException, ConnectionRefusedError):
        return True  # refused, or no SFTP at all on the host (its last login went)
    return False


def pub(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()} member@laptop"


def upload(sftp: paramiko.SFTPClient, name: str, data: bytes) -> None:
    """Write as a plain client does, one acknowledged request at a time, so a refusal
    comes back as the server's own words (paramiko's pipelined ``putfo`` sees only the
    size that arrived)."""
    with sftp.open(name, "wb") as f:
        for i in range(0, len(data), 32768):
            f.write(data[i : i + 32768])


def site(panel: Panel, slug: str, domain: str) -> tuple[dict[str, Any], dict[str, Any]]:
    account = panel.world.account(slug)
    panel.world.domain(account, domain)
    made = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": domain, "php": "8.2"}
    )
    return account, made


def login(panel: Panel, account: dict[str, Any], site_id: int, name: str, **spec: Any) -> Any:
    return panel.staff.ok(
        "POST",
        "/objects/sftp_login",
        201,
        json={"account_id": account["id"], "site_id": site_id, "name": name, "spec": spec},
    )


def test_members_put_their_site_on_the_host_over_sftp_and_stay_in_their_folder(
    panel: Panel, sftp1: TestHost
) -> None:
    host = panel.register(sftp1)
    acme, a = site(panel, "acme", "acme.test")
    beta, b = site(panel, "beta", "beta.test")
    key, other_key = paramiko.ECDSAKey.generate(), paramiko.ECDSAKey.generate()
    password = "correct horse battery"
    web = login(panel, acme, a["id"], "acme-web", password=password, ssh_keys=[pub(key)])
    assert "password_hash" not in web["spec"] and "password" not in web["spec"]
    assert web["host_id"] is None and web["site_id"] == a["id"]
    whole = login(panel, acme, a["id"], "acme-all", scope="home", ssh_keys=[pub(key)])
    login(panel, beta, b["id"], "beta-web", ssh_keys=[pub(other_key)])
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert panel.staff.ok("GET", f"/objects/sftp_login/{web['id']}")["status"] == "active"
    assert panel.reconcile(host["id"]).result == "noop"

    # Upload a page: the site serves it, PHP runs it as the account's user.
    with connect(sftp1, "acme-web", key=key) as sftp:
        assert "index.html" in sftp.listdir(".")  # the site's own first page
        page = b"<?php echo 'hello from ', posix_getpwuid(posix_geteuid())['name'];"
        sftp.putfo(io.BytesIO(page), "index.php")
        attrs = sftp.stat("index.php")
        uid = int(sftp1.exec(["id", "-u", "acme"], check=True).stdout)
        assert attrs.st_uid == uid
        sftp.remove("index.html")
        sftp.mkdir("img")
        sftp.putfo(io.BytesIO(b"GIF89a"), "img/logo.gif")
    wait_for(sftp1, "acme.test", 200, "hello from acme", "/index.php")
    wait_for(sftp1, "acme.test", 200, "GIF89a", "/img/logo.gif")

    # Shut in its folder: '..', absolute paths and symlinks lead nowhere else.
    with connect(sftp1, "acme-web", password=password) as sftp:
        assert sorted(sftp.listdir("..")) == sorted(sftp.listdir("/")) == ["img", "index.php"]
        assert sorted(sftp.listdir("../../..")) == ["img", "index.php"]
        for path in ("/etc/passwd", "/var/www/konbit/beta", "../beta/acme.test/index.html"):
            with pytest.raises(OSError):
                sftp.stat(path)
        sftp.symlink("/etc/passwd", "pw")
        sftp.symlink("../../beta", "up")
        for path in ("pw", "up/index.html"):
            with pytest.raises(OSError):
                sftp.open(path).read()
        sftp.remove("pw")
        sftp.remove("up")
    # The whole-home login sees the site's folder from the home.
    with connect(sftp1, "acme-all", key=key) as sftp:
        root = a["document_root"].split("/")[0]
        assert root in sftp.listdir("/")
        assert "index.php" in sftp.listdir(a["document_root"])
    # Account B's login cannot list or read A's files, by any path.
    with connect(sftp1, "beta-web", key=other_key) as sftp:
        assert "index.php" not in sftp.listdir("/")
        for path in ("/acme.test/index.php", "../../acme", "/var/www/konbit/acme"):
            with pytest.raises(OSError):
                sftp.listdir(path)
    assert refused(sftp1, "acme-web", password="wrong password!")
    assert refused(sftp1, "acme-web", key=other_key)  # B's key is not A's
    assert refused(sftp1, "beta-web", password=password)  # no password set at all

    # The key goes: it no longer logs in; the password (kept by the merge) still does.
    new_key = paramiko.ECDSAKey.generate()
    panel.staff.ok(
        "PATCH", f"/objects/sftp_login/{web['id']}", json={"spec": {"ssh_keys": [pub(new_key)]}}
    )
    assert panel.reconcile(host["id"]).result == "applied"
    assert refused(sftp1, "acme-web", key=key)
    connect(sftp1, "acme-web", key=new_key).close()
    connect(sftp1, "acme-web", password=password).close()

    # Deleting logins never deletes files.
    for obj in (web, whole):
        panel.staff.ok("DELETE", f"/objects/sftp_login/{obj['id']}", 202)
    assert panel.reconcile(host["id"]).result == "applied"
    assert panel.staff.request("GET", f"/objects/sftp_login/{web['id']}").status_code == 404
    assert refused(sftp1, "acme-web", password=password)
    wait_for(sftp1, "acme.test", 200, "hello from acme", "/index.php")
    root = f"/var/www/konbit/acme/{a['document_root']}"
    listing = sftp1.exec(["ls", "-A", root], check=True).stdout.split()
    assert listing == ["img", "index.php"]


def test_a_new_login_is_usable_soon_after_the_post(panel: Panel, sftp1: TestHost) -> None:
    """No reload is needed for a login: ProFTPD reads its user file at each login, so it
    works the moment the reconcile ends."""
    host = panel.register(sftp1) if not _hosts(panel) else _hosts(panel)[0]
    acme, a = site(panel, "gamma", "gamma.test")
    assert panel.reconcile(host["id"]).result == "applied"
    key = paramiko.ECDSAKey.generate()
    login(panel, acme, a["id"], "gamma-web", ssh_keys=[pub(key)])
    assert panel.reconcile(host["id"]).result == "applied"
    connect(sftp1, "gamma-web", key=key).close()  # at once: how soon is bench/sftp.py's


def _hosts(panel: Panel) -> list[dict[str, Any]]:
    return panel.staff.ok("GET", "/hosts")["items"]  # type: ignore[no-any-return]


@pytest.fixture(scope="module")
def quota1(lab: Lab, panel_key: str) -> Iterator[TestHost]:
    """A web host whose homes live on a btrfs file system with quotas."""
    host = lab.start("quota1", roles=["web"], authorized_keys=[panel_key], home_quota=True)
    host.wait_ready(60)
    yield host
    host.stop()


def test_the_disk_quota_stops_an_upload_with_a_clear_error_and_keeps_the_old_file(
    panel: Panel, quota1: TestHost
) -> None:
    host = panel.register(quota1, settings={"web_quota": "btrfs"})
    account = panel.world.account("quo", disk_mb=1)
    panel.world.domain(account, "quo.test")
    made = panel.staff.ok(
        "POST", "/sites", 201, json={"account_id": account["id"], "domain": "quo.test"}
    )
    key = paramiko.ECDSAKey.generate()
    login(panel, account, made["id"], "quo-web", ssh_keys=[pub(key)])
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    limits = quota1.exec(["btrfs", "qgroup", "show", "-re", "--raw", "/var/www/konbit"]).stdout
    assert f"{1024 * 1024}" in limits and "quo" in limits

    with connect(quota1, "quo-web", key=key) as sftp:
        sftp.putfo(io.BytesIO(b"<h1>the good page</h1>"), "index.html")
        sftp.putfo(io.BytesIO(b"x" * 300_000), "small.bin")  # under the quota
        with pytest.raises(OSError, match="Quota exceeded"):
            upload(sftp, "index.html", b"y" * 2_000_000)
        with pytest.raises(OSError, match="Quota exceeded"):
            upload(sftp, "big.bin", b"z" * 2_000_000)
    # Nothing half-written took the place of the page, and nothing is left behind.
    wait_for(quota1, "quo.test", 200, "the good page")
    root = f"/var/www/konbit/quo/{made['document_root']}"
    assert sorted(quota1.exec(["ls", "-A", root], check=True).stdout.split()) == [
        "index.html",
        "small.bin",
    ]

    # More quota: the same upload goes through.
    panel.staff.ok("PATCH", f"/accounts/{account['id']}", json={"quotas": {"disk_mb": 10}})
    assert panel.reconcile(host["id"]).result == "applied"
    with connect(quota1, "quo-web", key=key) as sftp:
        sftp.putfo(io.BytesIO(b"z" * 2_000_000), "big.bin")
        assert sftp.stat("big.bin").st_size == 2_000_000


def shell(host: TestHost, user: str, key: paramiko.PKey, command: str) -> str:
    """Run a command over the host's own sshd as a member would, its host key pinned."""
    client = paramiko.SSHClient()
    kind, data = host.host_key.split()[:2]
    client.get_host_keys().add(
        host.address, kind, paramiko.PKey.from_type_string(kind, base64.b64decode(data))
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    try:
        client.connect(host.address, username=user, pkey=key, timeout=5, allow_agent=False,
                       look_for_keys=False)  # fmt: skip
        _, out, _ = client.exec_command(command, timeout=10)
        return out.read().decode()
    finally:
        client.close()


def test_staff_alone_give_a_login_a_shell(panel: Panel, sftp1: TestHost) -> None:
    host = panel.register(sftp1) if not _hosts(panel) else _hosts(panel)[0]
    account, made = site(panel, "delta", "delta.test")
    key = paramiko.ECDSAKey.generate()
    obj = login(panel, account, made["id"], "delta-web", ssh_keys=[pub(key)])
    assert panel.reconcile(host["id"]).result == "applied"
    with pytest.raises(paramiko.AuthenticationException):
        shell(sftp1, "delta", key, "true")  # no shell until staff allow it
    member = panel.world.member(account)
    path = f"/objects/sftp_login/{obj['id']}"
    refused = member.patch(path, json={"spec": {"shell": True}})
    assert refused.status_code == 403 and "staff" in refused.json()["detail"]
    panel.staff.ok("PATCH", path, json={"spec": {"shell": True}})
    report = panel.reconcile(host["id"])
    assert report.result == "applied", report.error
    assert shell(sftp1, "delta", key, "id -un; pwd").split() == ["delta", "/var/www/konbit/delta"]
    # The member still changes what it may: its keys (the shell follows them).
    new_key = paramiko.ECDSAKey.generate()
    member.ok("PATCH", path, json={"spec": {"ssh_keys": [pub(new_key)]}})
    assert panel.reconcile(host["id"]).result == "applied"
    assert shell(sftp1, "delta", new_key, "id -un").strip() == "delta"
    with pytest.raises(paramiko.AuthenticationException):
        shell(sftp1, "delta", key, "true")
    panel.staff.ok("PATCH", path, json={"spec": {"shell": False}})
    assert panel.reconcile(host["id"]).result == "applied"
    with pytest.raises(paramiko.AuthenticationException):
        shell(sftp1, "delta", new_key, "true")
    connect(sftp1, "delta-web", key=new_key).close()  # SFTP stays
