"""Start and stop real, isolated Debian test hosts on this machine.

Each host is an ``unshare`` process (net, mount, PID, UTS, IPC namespaces) whose init
mounts an overlay of the read-only layers with a per-host upper dir, chroots into it and
runs ``tini`` + ``files/init.sh``. Its ``eth0`` is one end of a veth pair whose other end
sits on the lab's bridge. The lab process is the hosts' lifeline: a parent-death signal
kills every host when it dies, so a killed test run leaves nothing behind.

Requires root, util-linux (unshare, nsenter) and iproute2.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from types import TracebackType
from typing import cast

from .build import (
    BASE,
    FILES,
    LayerSpec,
    TestHostError,
    default_workdir,
    die_with_parent,
    ensure_layers,
    live_host_records,
    owner_alive,
    owner_fields,
    process_start_time,
    rmtree_unmounted,
)
from .host import HOST_PATH, HostSpec, Role, TestHost, WebServer
from .procs import ip, pid_running, wait_child, wait_new_netns

__all__ = ["HostSpec", "Lab", "Role", "TestHost", "WebServer"]


class Lab:
    """A set of test hosts on one bridge; a context manager that stops them on exit.

    Two labs can coexist when they use different ``bridge``, ``subnet`` and
    ``veth_prefix`` (pytest-xdist: one per worker). Call ``start`` from a thread that lives
    as long as the hosts (the main thread): the parent-death signal fires when the thread
    that started a host ends.
    """

    def __init__(
        self,
        workdir: Path | str | None = None,
        bridge: str = "thbr0",
        subnet: str = "10.77.0",
        veth_prefix: str = "th-",
    ) -> None:
        if not re.match(r"^\d{1,3}\.\d{1,3}\.\d{1,3}$", subnet):
            raise ValueError(f"subnet is a /24 prefix like '10.77.0', not {subnet!r}")
        self.workdir = Path(workdir) if workdir is not None else default_workdir()
        self.bridge = bridge
        self.subnet = subnet
        self.veth_prefix = veth_prefix
        self.hosts: dict[str, TestHost] = {}
        self._kept: dict[str, tuple[Path, list[Path]]] = {}  # name -> (hostdir, lower)
        self._numbers: dict[str, int] = {}  # name -> last octet, stable for the lab's life
        self._lock = threading.Lock()
        self._created_bridge = False
        self._labdir: Path | None = None
        self.nsenter = "nsenter"

    # -- context manager ------------------------------------------------------------------

    def __enter__(self) -> Lab:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- public API -----------------------------------------------------------------------

    @property
    def gateway(self) -> str:
        """The bridge's own address: how hosts reach this process."""
        return f"{self.subnet}.1"

    def check_prerequisites(self) -> None:
        """Raise a clear error when this machine cannot run test hosts."""
        problems = []
        if os.geteuid() != 0:
            problems.append("must run as root (namespaces, overlayfs, bridge)")
        for tool in ("unshare", "nsenter", "ip", "chroot"):
            if shutil.which(tool) is None:
                problems.append(f"{tool} not found (packages util-linux, iproute2, coreutils)")
        if problems:
            raise TestHostError("cannot run test hosts: " + "; ".join(problems))
        self.nsenter = shutil.which("nsenter") or "nsenter"

    def ensure_base(self) -> Path:
        """Build the base layer if missing or outdated; return its root dir."""
        return ensure_layers(BASE, self.workdir)[0]

    def ensure_layers(self, spec: LayerSpec) -> list[Path]:
        """Build ``spec`` and its parents if needed; return their roots, top first."""
        return ensure_layers(spec, self.workdir)

    def start(
        self,
        name: str,
        roles: Iterable[Role] = (),
        authorized_keys: Iterable[str] = (),
        web_server: WebServer = "nginx",
        *,
        layers: Sequence[LayerSpec] = (),
        reuse: bool = False,
        home_quota: bool = False,
    ) -> TestHost:
        """Start a host and return at once; call ``wait_ready`` on it before use.

        ``reuse`` picks up the upper dir of a host of that name stopped with
        ``keep=True`` (same files, same SSH host key); otherwise the host is fresh.
        """
        spec = HostSpec(name, tuple(roles), web_server, tuple(layers), home_quota)
        return self.start_spec(spec, authorized_keys, reuse=reuse)

    def start_spec(
        self, spec: HostSpec, authorized_keys: Iterable[str] = (), *, reuse: bool = False
    ) -> TestHost:
        """``start`` for a ready-made HostSpec."""
        self.check_prerequisites()
        if spec.home_quota and shutil.which("mkfs.btrfs") is None:
            raise TestHostError("a host with home quotas needs mkfs.btrfs (package btrfs-progs)")
        if len(self.veth_prefix + spec.name) > 15:
            veth = self.veth_prefix + spec.name
            raise ValueError(f"{veth}: interface names have at most 15 characters")
        keys = [k.strip() for k in authorized_keys if k.strip()]
        with self._lock:
            if spec.name in self.hosts:
                raise TestHostError(f"{spec.name} is already running")
            kept = self._kept.pop(spec.name, None) if reuse else None
            if kept is None and spec.name in self._kept:
                rmtree_unmounted(self._kept.pop(spec.name)[0])
            if kept is not None:
                hostdir, lower = kept
            else:
                lower = ensure_layers(spec.layer_spec(), self.workdir)
                hostdir = self._new_hostdir(spec.name)
            address = f"{self.subnet}.{self._number_for(spec.name)}"
            self._ensure_bridge()
            hosts_file = self._write_hosts_file(extra={spec.name: address})
            (hostdir / "authorized_keys").write_text("".join(k + "\n" for k in keys))
            host = self._spawn(spec, address, hostdir, lower, hosts_file)
            self.hosts[spec.name] = host
            self._write_record(host)
        return host

    def stop_all(self, timeout: float = 5.0) -> None:
        """Stop every host of this lab (kept upper dirs stay until ``close``)."""
        for host in list(self.hosts.values()):
            host.stop(timeout=timeout)

    def close(self) -> None:
        """Stop all hosts, delete their dirs and the bridge this lab created."""
        try:
            self.stop_all()
        finally:
            for hostdir, _ in self._kept.values():
                rmtree_unmounted(hostdir)
            self._kept.clear()
            if self._labdir is not None:
                shutil.rmtree(self._labdir, ignore_errors=True)
                self._labdir = None
            if self._created_bridge:
                ip("link", "del", self.bridge, check=False)
                self._created_bridge = False

    # -- internals ------------------------------------------------------------------------

    def _number_for(self, name: str) -> int:
        if name not in self._numbers:
            used = set(self._numbers.values())
            free = [n for n in range(2, 255) if n not in used]
            if not free:
                raise TestHostError(f"no address left in {self.subnet}.0/24")
            self._numbers[name] = free[0]
        return self._numbers[name]

    def _new_hostdir(self, name: str) -> Path:
        hosts = self.workdir / "hosts"
        hosts.mkdir(parents=True, exist_ok=True)
        self._collect_dead_hostdirs(hosts)
        hostdir = hosts / f"{name}-{secrets.token_hex(4)}"
        for sub in ("upper", "work", "merged"):
            (hostdir / sub).mkdir(parents=True)
        return hostdir

    @staticmethod
    def _collect_dead_hostdirs(hosts: Path) -> None:
        """Host dirs left by a lab process that died (killed test run)."""
        for d in hosts.iterdir():
            try:
                rec = json.loads((d / "host.json").read_text())
            except (OSError, ValueError):
                rec = None
            if rec is None:
                # No record yet: a dir another lab is creating right now, or junk; junk only
                # once it is old.
                if time.time() - d.stat().st_mtime < 3600:
                    continue
            elif owner_alive(rec):
                continue
            rmtree_unmounted(d)

    def _ensure_bridge(self) -> None:
        if not Path(f"/sys/class/net/{self.bridge}").exists():
            ip("link", "add", self.bridge, "type", "bridge")
            self._created_bridge = True
        cidr = f"{self.gateway}/24"
        shown = ip("-o", "-4", "addr", "show", "dev", self.bridge).stdout
        if cidr not in shown:
            ip("addr", "add", cidr, "dev", self.bridge)
        ip("link", "set", self.bridge, "up")

    def _write_hosts_file(self, extra: dict[str, str] | None = None) -> Path:
        """Rewrite the lab's /etc/hosts in place: every host bind-mounts this one inode."""
        if self._labdir is None:
            labs = self.workdir / "labs"
            labs.mkdir(parents=True, exist_ok=True)
            for old in labs.iterdir():  # left by killed lab processes
                pid = old.name.rsplit("-", 1)[-1]
                if pid.isdigit() and process_start_time(int(pid)) is None:
                    shutil.rmtree(old, ignore_errors=True)
            self._labdir = labs / f"{self.bridge}-{os.getpid()}"
            self._labdir.mkdir(exist_ok=True)
        path = self._labdir / "hosts"
        entries = {h.name: h.address for h in self.hosts.values()}
        entries.update(extra or {})
        lines = [
            "127.0.0.1\tlocalhost",
            "::1\tlocalhost ip6-localhost ip6-loopback",
            f"{self.gateway}\trunner.test runner",
        ]
        lines += [f"{addr}\t{name}.test {name}" for name, addr in sorted(entries.items())]
        content = "\n".join(lines) + "\n"
        with open(path, "a+") as fh:
            fh.seek(0)
            fh.write(content)
            fh.truncate()
        return path

    def _spawn(
        self, spec: HostSpec, address: str, hostdir: Path, lower: list[Path], hosts_file: Path
    ) -> TestHost:
        env = {
            "PATH": HOST_PATH,
            "TH_NAME": spec.name,
            "TH_ADDRESS": f"{address}/24",
            "TH_LOWER": ":".join(str(p) for p in lower),
            "TH_UPPER": str(hostdir / "upper"),
            "TH_WORK": str(hostdir / "work"),
            "TH_MERGED": str(hostdir / "merged"),
            "TH_HOSTS_FILE": str(hosts_file),
            "TH_KEYS_FILE": str(hostdir / "authorized_keys"),
            "TH_FILES": str(FILES),
            "TH_SERVICES": " ".join(spec.services()),
            "TH_HOME_IMAGE": str(hostdir / "homes.btrfs") if spec.home_quota else "",
        }
        argv = [
            "unshare", "--net", "--mount", "--pid", "--uts", "--ipc", "--fork", "--kill-child",
            "sh", str(FILES / "enter.sh"),
        ]  # fmt: skip
        veth = self.veth_prefix + spec.name
        ip("link", "del", veth, check=False)  # freed asynchronously after a namespace dies
        with open(hostdir / "console.log", "ab") as console:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=console,
                stderr=subprocess.STDOUT,
                env=env,
                start_new_session=True,
                preexec_fn=die_with_parent(),  # noqa: PLW1509 - only prctl runs in the child
            )
        try:
            wait_new_netns(proc)
            ip("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", str(proc.pid))
            ip("link", "set", veth, "master", self.bridge, "up")
            pid = wait_child(proc)
        except BaseException:
            proc.kill()
            proc.wait()
            ip("link", "del", veth, check=False)
            raise
        return TestHost(
            self, spec=spec, address=address, hostdir=hostdir, proc=proc, pid=pid, lower=lower
        )

    def _write_record(self, host: TestHost) -> None:
        record = {
            **owner_fields(),
            "name": host.name,
            "address": host.address,
            "pid": host.pid,
            "roles": list(host.spec.roles),
            "bridge": self.bridge,
            "layers": [str(p) for p in host.lower],
        }
        tmp = host.hostdir / "host.json.tmp"
        tmp.write_text(json.dumps(record, indent=2) + "\n")
        tmp.rename(host.hostdir / "host.json")

    def _stop(self, host: TestHost, keep: bool, timeout: float) -> None:
        with self._lock:
            if self.hosts.get(host.name) is not host:
                return
            ip("link", "del", host.veth, check=False)
            try:
                host._kill_and_wait(timeout)
            finally:
                del self.hosts[host.name]
                self._write_hosts_file()
            if keep:
                self._kept[host.name] = (host.hostdir, host.lower)
            else:
                rmtree_unmounted(host.hostdir)


def list_hosts(workdir: Path | None = None) -> list[dict[str, object]]:
    """Records of the hosts that live labs on this machine run (for the debugging CLI)."""
    records = live_host_records(workdir or default_workdir())
    return [
        r for r in records if isinstance(r.get("pid"), int) and pid_running(cast(int, r["pid"]))
    ]
