"""The SFTP bench's host side: N logins' desired state (over the web plugin's sites), the
test host's reset, one SFTP login as a member's client does it (host key pinned), and the
floor (the same ``sftp/`` files through one tar over OpenSSH, the same user-file build and
``proftpd -t``)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import shlex
import socket
import subprocess
import threading
import time
from pathlib import Path

import bcrypt
import paramiko
from reconcile_host import HOST_NAME, reset, sh

from panel.testhosts import TestHost
from provisioners import sftp as sftp_mod
from provisioners.api import LIVE, AccountView, DesiredState, HostView, Item, SiteView
from provisioners.engine import HostEngine
from provisioners.templating import render

SFTP_PORT = 2222
FLOOR_DIR = "/tmp/floor"
FLOOR_CONF = "/root/floor-proftpd.conf"
PASSWORD = "bench password one"
LOGINS_PER_SITE = 5

# The host's users and Debian's ProFTPD defaults, saved once (untimed) and put back by
# ``fresh``; reconcile_host's reset restores passwd/group/shadow/gshadow from the same dir.
SAVE = (
    "mkdir -p /root/bench-accounts && cd /etc && "
    "cp passwd group shadow gshadow /root/bench-accounts/ && "
    "cp default/nginx /root/bench-accounts/default-nginx && "
    "cp default/proftpd /root/bench-accounts/default-proftpd"
)

_STOP_PROFTPD = r"""
set -u
if [ -s /run/proftpd.pid ] && pid="$(cat /run/proftpd.pid)" && kill "$pid" 2>/dev/null; then
    i=0; while kill -0 "$pid" 2>/dev/null && [ $i -lt 100 ]; do sleep 0.05; i=$((i+1)); done
fi
rm -f /run/proftpd.pid
"""

# Back to a host with no SFTP at all: ProFTPD stopped, its host key gone, Debian's defaults.
_DROP_SFTP = (
    _STOP_PROFTPD
    + f"rm -rf {sftp_mod.PRIVATE} {FLOOR_DIR} {FLOOR_CONF}\n"
    + f"cat /root/bench-accounts/default-proftpd > {sftp_mod.DEFAULTS}\n"
)


@dataclasses.dataclass(frozen=True)
class World:
    """N logins over S sites (one account each, LOGINS_PER_SITE logins a site, the last
    site takes the rest), each with its own ECDSA key; one in ``password_every`` also has
    a password (one bcrypt hash computed once and shared: the API would hash each)."""

    logins: int
    keys: tuple[paramiko.ECDSAKey, ...]
    alt_key: paramiko.ECDSAKey  # login 1's replacement key (one login changed)
    password_hash: str
    password_every: int
    sites: int

    def name(self, i: int) -> str:
        return f"l{i + 1}-{self.site_of(i) + 1}"

    def site_of(self, i: int) -> int:
        return min(i // LOGINS_PER_SITE, self.sites - 1)


def make_world(logins: int, password_every: int) -> World:
    sites = max(1, logins // LOGINS_PER_SITE)
    keys = tuple(paramiko.ECDSAKey.generate() for _ in range(logins))
    hashed = bcrypt.hashpw(PASSWORD.encode(), bcrypt.gensalt(rounds=10)).decode()
    return World(logins, keys, paramiko.ECDSAKey.generate(), hashed, password_every, sites)


def pub(key: paramiko.PKey) -> str:
    return f"{key.get_name()} {key.get_base64()}"


def build_state(world: World, *, with_logins: bool = True, alt: bool = False) -> DesiredState:
    """S static sites on S accounts, and (``with_logins``) every login, scope "site";
    ``alt``: login 1 carries its replacement key instead of its own."""
    accounts = [AccountView(a + 1, f"bs{a + 1}", "active") for a in range(world.sites)]
    sites = tuple(
        SiteView(
            id=s + 1,
            version=1,
            account=accounts[s],
            domain=f"s{s + 1}.sftp.test",
            aliases=(),
            document_root=f"www/s{s + 1}.sftp.test",
            php=None,
            https="off",
            enabled=True,
            deleting=False,
        )
        for s in range(world.sites)
    )
    items: list[Item[sftp_mod.SftpLogin]] = []
    if with_logins:
        for i in range(world.logins):
            key = world.alt_key if alt and i == 0 else world.keys[i]
            every = world.password_every
            spec = sftp_mod.SftpLogin(
                ssh_keys=[pub(key)],
                password_hash=world.password_hash if every and i % every == 0 else None,
            )
            site = sites[world.site_of(i)]
            items.append(
                Item(
                    id=i + 1,
                    version=2 if alt and i == 0 else 1,
                    kind=sftp_mod.KIND,
                    account=site.account,
                    name=world.name(i),
                    spec=spec,
                    deleting=False,
                    site_id=site.id,
                )
            )
    host = HostView(1, HOST_NAME, ("web",), {"web_server": "nginx", "php_versions": ["8.2"]})
    return DesiredState(
        host=host,
        accounts=tuple(accounts),
        sites=sites,
        objects={sftp_mod.KIND: tuple(items)} if items else {},
    )


# -- the host -----------------------------------------------------------------------------


def fresh(host: TestHost) -> None:
    """No konbit tree, no bench users, no ProFTPD running, Debian's defaults (untimed)."""
    sh(host, _DROP_SFTP)
    reset(host)


def drop_sftp(host: TestHost) -> None:
    """Only ProFTPD, its host key and defaults back to none (untimed; the sites stay)."""
    sh(host, _DROP_SFTP)


def sftp_host_key(host: TestHost) -> paramiko.PKey:
    line = host.path(f"{sftp_mod.HOST_KEY}.pub").read_text()
    kind, data = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


def login(
    address: str, user: str, key: paramiko.PKey, host_key: paramiko.PKey, timeout: float = 5
) -> str | None:
    """One SFTP login as a member's client does it (the host's SFTP key pinned, no trust
    on first use), the SFTP channel opened and closed: None when it worked, else why not."""
    try:
        sock = socket.create_connection((address, SFTP_PORT), timeout=timeout)
    except OSError as exc:
        return f"connect: {exc}"
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=timeout)
        if transport.get_remote_server_key() != host_key:
            return "the SFTP host key is not the pinned one"
        transport.auth_publickey(user, key)
        sftp = paramiko.SFTPClient.from_transport(transport)
        if sftp is None:
            return "no SFTP channel"
        sftp.close()
        return None
    except (paramiko.SSHException, OSError, EOFError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        transport.close()


def wait_login(
    host: TestHost,
    user: str,
    key: paramiko.PKey,
    host_key: paramiko.PKey,
    started: float,
    timeout: float = 30,
    every: float = 0.02,
) -> tuple[float, float, int]:
    """Log in every ``every`` s until it works, while a thread looks (from this machine,
    no process on the host) for the user in the live ``sftp/passwd`` every ``every`` s.
    Returns (seconds to the user in the live passwd, seconds to the login done, failed
    attempts), counted from ``started``."""
    passwd = host.path(f"{LIVE}/sftp/passwd")
    needle = f"\n{user}:".encode()
    seen: list[float] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            with contextlib.suppress(OSError):
                if needle in b"\n" + passwd.read_bytes():
                    seen.append(time.perf_counter() - started)
                    return
            stop.wait(every)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    failed = 0
    deadline = started + timeout
    try:
        while (why := login(host.address, user, key, host_key)) is not None:
            failed += 1
            if time.perf_counter() > deadline:
                raise RuntimeError(f"{user}: no SFTP login within {timeout} s (last: {why})")
            time.sleep(every)
        done = time.perf_counter() - started
        watcher.join(1.0)  # the file is live now: the watcher sees it at its next look
    finally:
        stop.set()
        watcher.join()
    return (seen[0] if seen else float("nan")), done, failed


# -- floor --------------------------------------------------------------------------------


def write_floor_tree(engine: HostEngine, state: DesiredState, root: Path) -> int:
    """The sftp plugin's rendered files under ``root/sftp``, with its ``proftpd.conf``
    naming the floor's own tree (``/tmp/floor/sftp/passwd``, ``keys/%u``) instead of the
    live one; returns the number of files."""
    (plugin,) = [p for p in engine.for_state(state) if p.name == "sftp"]
    count = 0
    for f in plugin.render(state):
        path = root / f.path
        path.parent.mkdir(parents=True, exist_ok=True)
        content = f.content
        if f.path == "sftp/proftpd.conf":
            content = floor_conf()
        path.write_bytes(content)
        path.chmod(f.mode)
        count += 1
    return count


def floor_conf() -> bytes:
    return render(
        "sftp/proftpd.conf.j2", live=FLOOR_DIR, port=SFTP_PORT, host_key=sftp_mod.HOST_KEY
    )


# The plugin's own checker: builds ProFTPD's passwd/group (uids as the host has them),
# then proftpd -t.  getattr: it is private and may be renamed.
_CHECK = getattr(sftp_mod, "_CHECK", "")
_HOST_KEY_SCRIPT = getattr(sftp_mod, "_HOST_KEY_SCRIPT", "")

FLOOR_REMOTE = (
    f"rm -rf {FLOOR_DIR} && mkdir {FLOOR_DIR} && tar -C {FLOOR_DIR} -xf - "
    f"&& sh -c {shlex.quote(_CHECK)} konbit {FLOOR_DIR}/sftp >/dev/null"
)


def floor_setup(host: TestHost) -> None:
    """Untimed, as the engine's equivalents are one-off steps: the SFTP host key, and a
    ProFTPD started on the floor's configuration (its user file is read at each login, so
    the floor's push needs no restart, as the engine's does not)."""
    sh(host, _STOP_PROFTPD)
    sh(
        host,
        _HOST_KEY_SCRIPT,
        sftp_mod.PRIVATE,
        sftp_mod.HOST_KEY,
    )
    host.path(FLOOR_CONF).write_bytes(floor_conf())
    sh(
        host,
        f"mkdir -p {FLOOR_DIR}/sftp/keys && cd {FLOOR_DIR}/sftp && install -m 0600 /dev/null passwd"
        " && install -m 0600 /dev/null group"
        f" && install -d /var/log/proftpd && proftpd -c {FLOOR_CONF}",
    )


def floor_once(tree: Path, ssh: list[str]) -> float:
    """One tar stream over OpenSSH + the checker (user files, ``proftpd -t``)."""
    started = time.perf_counter()
    tar = subprocess.Popen(["tar", "-C", str(tree), "-cf", "-", "."], stdout=subprocess.PIPE)
    remote = subprocess.run(
        [*ssh, FLOOR_REMOTE], stdin=tar.stdout, capture_output=True, timeout=600, check=False
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()
    seconds = time.perf_counter() - started
    if remote.returncode or tar.returncode:
        raise RuntimeError(f"floor failed ({remote.returncode}): {remote.stderr.decode()[-2000:]}")
    return seconds
