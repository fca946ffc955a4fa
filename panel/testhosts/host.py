"""One test host: what it runs (``HostSpec``) and the running host (``TestHost``): its root,
its host key, readiness, commands run inside it, and how it stops."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol, get_args

from .build import BASE, LayerSpec, TestHostError
from .procs import any_process_in, namespace_inodes, tail

Role = Literal["web", "mail", "db", "lists", "backup", "dns"]
WebServer = Literal["nginx", "apache2"]

NAME_RE = re.compile(r"^[a-z][a-z0-9-]*$")
HOST_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


@dataclass(frozen=True)
class HostSpec:
    """What a test host is: its name, roles and role settings, and extra layers."""

    name: str
    roles: tuple[Role, ...] = ()
    web_server: WebServer = "nginx"
    layers: tuple[LayerSpec, ...] = ()  # extra layers on top of the base, top last
    # Web homes (/var/www/konbit) on their own btrfs file system with quotas, as a provider
    # mounts them to enforce accounts' disk quotas (a loop image in the host's directory).
    home_quota: bool = False

    def __post_init__(self) -> None:
        if not NAME_RE.match(self.name):
            raise ValueError(f"bad host name {self.name!r}: want [a-z][a-z0-9-]*")
        for role in self.roles:
            if role not in get_args(Role):
                raise ValueError(f"unknown role {role!r}")
        if self.web_server not in get_args(WebServer):
            raise ValueError(f"unknown web server {self.web_server!r}")

    def services(self) -> tuple[str, ...]:
        """Init script names the host starts at boot (php-fpm: whichever version is there)."""
        wanted: list[str] = []
        for role in self.roles:
            if role == "web":
                wanted += [self.web_server, "php-fpm", "cron"]
            elif role == "mail":
                wanted += ["postfix", "dovecot"]
            elif role == "db":
                wanted += ["mariadb", "postgresql"]
            elif role == "lists":
                wanted += ["postfix"]  # the list manager itself comes with its layer
            elif role == "dns":
                wanted += ["knot"]
        for layer in self.layers:
            wanted += [s for spec in layer.chain() for s in spec.services]
        return tuple(dict.fromkeys(wanted))

    def layer_spec(self) -> LayerSpec:
        """Topmost layer of this host (the base when it has no extra layers)."""
        return self.layers[-1] if self.layers else BASE


class HostsOwner(Protocol):
    """What a host needs of the lab that started it (``panel.testhosts.lab.Lab``)."""

    veth_prefix: str
    nsenter: str

    def _stop(self, host: TestHost, *, keep: bool, timeout: float) -> None: ...


class TestHost:
    """A running test host. ``root`` reads its files; ``exec`` runs a command inside it."""

    __test__ = False  # not a pytest test class despite the name

    ssh_port: int = 22

    def __init__(
        self,
        lab: HostsOwner,
        *,
        spec: HostSpec,
        address: str,
        hostdir: Path,
        proc: subprocess.Popen[bytes],
        pid: int,
        lower: list[Path],
    ) -> None:
        self.lab = lab
        self.spec = spec
        self.name = spec.name
        self.address = address
        self.hostdir = hostdir
        self.pid = pid  # PID 1 of the host's PID namespace (tini), as seen from here
        self.lower = lower
        self._proc = proc
        self._ns_inodes = namespace_inodes(proc.pid)
        self.started_at = time.monotonic()

    def __repr__(self) -> str:
        state = "running" if self.running else "stopped"
        return f"<TestHost {self.name} {self.address} pid={self.pid} {state}>"

    @property
    def root(self) -> Path:
        """The host's root file system as this process sees it."""
        return Path(f"/proc/{self.pid}/root")

    @property
    def veth(self) -> str:
        return self.lab.veth_prefix + self.name

    @property
    def running(self) -> bool:
        return self._proc.poll() is None

    def path(self, path: str) -> Path:
        """A path inside the host, e.g. ``host.path("/etc/nginx/nginx.conf")``."""
        return self.root / path.lstrip("/")

    @property
    def host_key(self) -> str:
        """The host's ``ssh-ed25519 AAAA...`` public key, to pin (never trust on first use)."""
        if not self._chrooted():
            raise TestHostError(f"{self.name}: not booted yet")
        fields = self.path("/etc/ssh/ssh_host_ed25519_key.pub").read_text().split()
        return f"{fields[0]} {fields[1]}"

    def _chrooted(self) -> bool:
        # Until the init chroots, /proc/PID/root is this machine's own root.
        try:
            return os.readlink(self.root) != "/"
        except OSError:
            return False

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Wait until the init wrote /run/ready (sshd and role services started)."""
        deadline = time.monotonic() + timeout
        while True:
            if self._proc.poll() is not None:
                code = self._proc.returncode
                raise TestHostError(f"{self.name}: host exited ({code})\n{self._diagnostics()}")
            if self._chrooted():
                if self.path("/run/ready").exists():
                    return
                failed = self.path("/run/failed")
                if failed.exists():
                    time.sleep(0.05)  # let syslog catch up
                    why = failed.read_text(errors="replace")
                    raise TestHostError(f"{self.name}: failed:\n{why}\n{self._diagnostics()}")
            if time.monotonic() > deadline:
                why = f"not ready after {timeout} s"
                raise TestHostError(f"{self.name}: {why}\n{self._diagnostics()}")
            time.sleep(0.005)

    def _diagnostics(self) -> str:
        console = self.hostdir / "console.log"
        parts = [f"--- console ({console}):\n" + tail(console)]
        if self._chrooted():
            parts.append("--- /var/log/syslog:\n" + tail(self.path("/var/log/syslog")))
        return "\n".join(parts)

    def exec(
        self,
        argv: Sequence[str],
        *,
        input: str | None = None,
        check: bool = False,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        """Run argv inside the host as root (tests and debugging only; the panel uses SSH)."""
        if not self._chrooted():
            raise TestHostError(f"{self.name}: not booted yet")
        env = {"PATH": HOST_PATH, "HOME": "/root", "LANG": "C.UTF-8", "TERM": "dumb"}
        # -r -w: chroot into the host; without them nsenter runs this machine's binaries.
        cmd = [self.lab.nsenter, "-t", str(self.pid), "-a", "-r", "-w", "--", *argv]
        return subprocess.run(
            cmd, input=input, capture_output=True, text=True, check=check, timeout=timeout, env=env
        )

    def stop(self, keep: bool = False, timeout: float = 5.0) -> None:
        """Stop the host; with ``keep`` its upper dir stays for ``lab.start(..., reuse=True)``."""
        self.lab._stop(self, keep=keep, timeout=timeout)

    def _kill_and_wait(self, timeout: float) -> None:
        # The unshare parent ignores SIGTERM: signal the namespace's PID 1.
        if self._proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGTERM)
            try:
                self._proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                for pid in (self.pid, self._proc.pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
                self._proc.wait(timeout=timeout)
        # The kernel kills the rest of the PID namespace after its PID 1; wait for that, so
        # "stopped" means no process of the host is left and its upper dir is quiet.
        deadline = time.monotonic() + timeout
        while self.namespace_alive():
            if time.monotonic() > deadline:
                raise TestHostError(f"{self.name}: processes still alive after stop")
            time.sleep(0.005)

    def namespace_alive(self) -> bool:
        """Whether any process on the machine is still in one of this host's namespaces."""
        return any_process_in(self._ns_inodes)
