"""Host process and network plumbing for the lab: ``ip`` commands, waiting for ``unshare``'s
new namespace and forked child, whether any process is left in a host's namespaces, and a
log's tail for diagnostics."""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from pathlib import Path

from .build import TestHostError


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(["ip", *args], capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise TestHostError(f"ip {' '.join(args)}: {proc.stderr.strip()}")
    return proc


def wait_new_netns(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """unshare(2) moves the unshare process itself into the new net namespace."""
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + timeout
    while True:
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/net") != own:
                return
        except OSError:
            pass
        if proc.poll() is not None:
            raise TestHostError(f"unshare exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TestHostError("unshare did not create a network namespace")
        time.sleep(0.001)


def wait_child(proc: subprocess.Popen[bytes], timeout: float = 5.0) -> int:
    """PID of unshare's forked child: PID 1 of the host's PID namespace."""
    children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children")
    deadline = time.monotonic() + timeout
    while True:
        try:
            pids = children.read_text().split()
        except OSError:
            pids = []
        if pids:
            return int(pids[0])
        if proc.poll() is not None:
            raise TestHostError(f"unshare exited with {proc.returncode}")
        if time.monotonic() > deadline:
            raise TestHostError("unshare did not fork its child")
        time.sleep(0.001)


def namespace_inodes(pid: int) -> frozenset[str]:
    inodes = set()
    for ns in ("net", "mnt", "pid_for_children", "uts", "ipc"):
        with contextlib.suppress(OSError):
            inodes.add(os.readlink(f"/proc/{pid}/ns/{ns}"))
    inodes.discard(os.readlink("/proc/self/ns/net"))  # never match our own
    return frozenset(inodes)


def any_process_in(inodes: frozenset[str]) -> bool:
    if not inodes:
        return False
    with os.scandir("/proc") as entries:  # closed on the early return too
        for entry in entries:
            if not entry.name.isdigit():
                continue
            for ns in ("net", "pid", "mnt"):
                try:
                    if os.readlink(f"/proc/{entry.name}/ns/{ns}") in inodes:
                        return True
                except OSError:
                    break
    return False


def pid_running(pid: int) -> bool:
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"({exc})"
