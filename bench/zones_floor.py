"""The DNS bench's floor: what any panel would do at least, by hand, on the same hosts in
the same run, over one OpenSSH connection per host and case, with the same files (the
ones the engine renders from the panel's own snapshot) and the same checkers.

* first apply: one tar stream of the whole tree into ``/etc/konbit/live`` (a fresh
  host: a plain directory, so every path in the files is the engine's), Debian's
  ``knot.conf`` made the include line, ``knotc conf-check``, on the primary the plugin's
  ``check-zones`` (kzonecheck of every zone, on every core) and a restart (where Knot
  listens changed, as for the engine); "served" is then watched as for the engine;
* no-op: one exec that reads the tree's manifest (``sha256sum`` of every file: what the
  engine reads to know nothing changed), nothing rendered;
* one zone changed: that zone file alone in a tar stream, ``kzonecheck`` of it and a
  blocking ``knotc zone-reload`` of that zone (the secondary gets it by NOTIFY + IXFR).
"""

from __future__ import annotations

import dataclasses
import io
import shlex
import subprocess
import tarfile
import time
from collections.abc import Callable
from pathlib import Path

from common import Cpu, metered
from reconcile_host import ssh_argv, write_tree
from zones_world import SOCKET, Panel

from panel.hosts.models import Host
from panel.hosts.state import snapshot
from panel.testhosts import TestHost
from provisioners.api import LIVE, DesiredState, RecordView, ZoneView
from provisioners.dns import MAIN, MAIN_TEXT, zone_file
from provisioners.engine import HostEngine
from provisioners.registry import load_plugins

# Each part ends with a stamp (the hosts share this machine's clock): "<part> <epoch>".
_FIRST = rf"""
set -eu
K="knotc -s {SOCKET}"
stamp() {{ printf '%s %s\n' "$1" "$(date +%s.%N)"; }}
stamp connected
mkdir -p {LIVE}
tar -C {LIVE} -xf -
stamp extract
printf '%s' "$2" > {MAIN}
knotc -c {MAIN} conf-check >/dev/null
stamp conf-check
if [ "$1" = primary ]; then sh {LIVE}/knot/bin/check-zones; fi
stamp check-zones
$K stop >/dev/null
while $K status >/dev/null 2>&1; do sleep 0.02; done
systemctl start knot >/dev/null
until $K status >/dev/null 2>&1; do sleep 0.02; done
stamp restart
"""

_MANIFEST = f"cd {LIVE}/ && find . -type f -print0 | xargs -0r sha256sum"

_ONE_ZONE = rf"""
set -eu
tar -C {LIVE} -xf -
kzonecheck -o "$1" "{LIVE}/$2" >/dev/null
knotc -s {SOCKET} -b -t 60 zone-reload "$1" >/dev/null
"""


@dataclasses.dataclass
class FloorRun:
    seconds: float
    cpu: Cpu
    served: float | None = None  # from the start: all zones served / the record answered
    parts: dict[str, float] = dataclasses.field(default_factory=dict)  # a first apply's


def desired(panel: Panel, host_id: int) -> DesiredState:
    """The host's desired state as the worker reads it (the panel's snapshot)."""
    with panel.db.session() as session:
        return snapshot(session, session.get_one(Host, host_id), panel.settings).state


def write_floor_tree(state: DesiredState, root: Path) -> int:
    """The files the engine renders for this host, laid out as under /etc/konbit/live."""
    return write_tree(HostEngine(load_plugins()), state, root)


def _ssh(key: Path, known_hosts: Path, host: TestHost, argv: list[str]) -> list[str]:
    return [*ssh_argv(key, known_hosts, host.address), shlex.join(argv)]


def _run(argv: list[str], stdin: bytes | None = None, tar_of: Path | None = None) -> bytes:
    if tar_of is not None:
        tar = subprocess.Popen(["tar", "-C", str(tar_of), "-cf", "-", "."], stdout=subprocess.PIPE)
        done = subprocess.run(argv, stdin=tar.stdout, capture_output=True, timeout=600, check=False)
        assert tar.stdout is not None
        tar.stdout.close()
        if tar.wait():
            raise RuntimeError(f"tar of {tar_of} failed")
    else:
        done = subprocess.run(argv, input=stdin, capture_output=True, timeout=600, check=False)
    if done.returncode:
        raise RuntimeError(f"floor failed ({done.returncode}): {done.stderr.decode()[-2000:]}")
    return done.stdout


def first(
    key: Path,
    known_hosts: Path,
    host: TestHost,
    tree: Path,
    primary: bool,
    pids: dict[str, int],
    then: Callable[[], object] | None = None,
) -> FloorRun:
    """The whole tree onto a fresh host (see the module's docstring); ``then`` is called
    as it ends, before the CPU meters settle."""
    role = "primary" if primary else "secondary"
    argv = _ssh(key, known_hosts, host, ["sh", "-c", _FIRST, "floor", role, MAIN_TEXT])
    with metered(pids) as cpu:
        sent = time.time()
        out = _run(argv, tar_of=tree)
        ended = time.time()
        if then is not None:
            then()
    parts, last = {}, sent
    for line in out.decode().splitlines():
        name, at = line.split()
        parts[name], last = float(at) - last, float(at)
    parts["exit"] = ended - last  # the shell's exit, the connection's close
    return FloorRun(cpu.seconds, cpu, parts=parts)


def noop(key: Path, known_hosts: Path, host: TestHost, pids: dict[str, int]) -> FloorRun:
    """The manifest of the live tree, read over one connection."""
    argv = _ssh(key, known_hosts, host, ["sh", "-c", _MANIFEST])
    with metered(pids) as cpu:
        out = _run(argv)
    if not out:
        raise RuntimeError(f"no manifest on {host.name}")
    return FloorRun(cpu.seconds, cpu)


def changed_zone(
    state: DesiredState, zone_id: int, extra: RecordView | None
) -> tuple[ZoneView, str, bytes]:
    """One zone of the state, with ``extra`` added: the zone, its file's path in the tree,
    the file as the engine renders it."""
    zone = next(z for z in state.zones if z.id == zone_id)
    if extra is not None:
        zone = dataclasses.replace(zone, records=(*zone.records, extra))
    path = f"knot/zones/{zone.id}-{zone.name}.zone"
    return zone, path, zone_file(zone, state.dns_servers)


def one_zone(
    key: Path,
    known_hosts: Path,
    host: TestHost,
    zone: ZoneView,
    path: str,
    content: bytes,
    pids: dict[str, int],
) -> FloorRun:
    """One zone file pushed, checked and loaded on the primary."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        info = tarfile.TarInfo(path)
        info.size, info.mode, info.mtime = len(content), 0o644, int(time.time())
        tar.addfile(info, io.BytesIO(content))
    argv = _ssh(key, known_hosts, host, ["sh", "-c", _ONE_ZONE, "floor", zone.name, path])
    with metered(pids) as cpu:
        _run(argv, stdin=buf.getvalue())
    return FloorRun(cpu.seconds, cpu)
