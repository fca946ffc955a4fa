"""Read-only layers that test hosts are made of, built once and reused.

The base is a Debian bookworm tree made by mmdebstrap; extra layers (for instance a
``mailman3`` layer for lists hosts) are packages installed on top of a parent layer and kept
as that overlay's upper dir. A layer lives in ``<workdir>/layers/<name>-<stamp>/root``: the
stamp hashes its recipe (package list, recipe files, parent stamp), so changing a recipe
builds a new directory beside the old one, and a lower layer never changes under a
running host. Old layers are deleted only when no live host uses them.
"""

from __future__ import annotations

import ctypes
import fcntl
import hashlib
import json
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

__all__ = [
    "BASE",
    "BASE_PACKAGES",
    "FILES",
    "MAILMAN3",
    "LayerSpec",
    "TestHostError",
    "default_workdir",
    "ensure_layers",
    "ensure_mmdebstrap",
    "layer_stamp",
]

FILES = Path(__file__).resolve().parent / "files"
SUITE = "bookworm"
# Bump when build code (not a recipe file) changes in a way that needs a rebuild.
RECIPE_VERSION = "1"

BASE_PACKAGES: tuple[str, ...] = (
    "openssh-server",
    "openssh-sftp-server",  # paramiko SFTP; only a Recommends of openssh-server
    "openssh-client",  # host-to-host rsync/ssh (site migration)
    "nginx",
    "apache2",
    "php-fpm",
    "php-mysql",  # sites that read their database (clone and migrate tests)
    "php-pgsql",
    "php-cli",  # applications' installers and updaters (WordPress, MediaWiki)
    "php-xml",  # MediaWiki
    "php-mbstring",
    "php-intl",
    "cron",  # members' cron jobs
    "proftpd-core",  # members' SFTP logins (mod_sftp, virtual users)
    "proftpd-mod-crypto",
    "btrfs-progs",  # accounts' disk quotas on web homes (btrfs subvolumes + qgroups)
    "postfix",
    "dovecot-imapd",
    "dovecot-lmtpd",
    "knot",  # DNS hosts: the authoritative server, knotc
    "knot-dnsutils",  # kdig, to look at a zone from a host
    "knot-dnssecutils",  # kzonecheck: zone files are checked before they go live
    "opendkim",  # mail hosts: DKIM signing
    "opendkim-tools",  # opendkim-genkey: DKIM keys are made on the host
    "mariadb-server",
    "mariadb-client",
    "postgresql",
    "iproute2",
    "procps",
    "ca-certificates",
    "tini",
    "rsync",
    "busybox",
    "sudo",
    "tar",
    "coreutils",
)


class TestHostError(RuntimeError):
    """A test host or one of its layers could not be built, started or stopped."""

    __test__ = False  # not a pytest test class despite the name


@dataclass(frozen=True)
class LayerSpec:
    """How to build one read-only layer.

    ``parent`` None means a base built by mmdebstrap from ``packages``; otherwise
    ``packages`` are apt-installed on top of the parent chain. ``recipe_files`` name files
    under ``files/`` whose content is part of the recipe (hashed into the stamp);
    ``customize`` names one of them, run as ``sh FILE ROOT`` after the packages are in.
    """

    name: str
    packages: tuple[str, ...]
    parent: LayerSpec | None = None
    recipe_files: tuple[str, ...] = ()
    customize: str | None = None
    debconf: str | None = None  # preseed file (under files/), base only
    dpkg_excludes: str | None = None  # dpkg path-exclude file (under files/), base only
    variant: str = "minbase"
    extra: tuple[str, ...] = field(default=())  # free-form words hashed into the stamp
    # Init scripts a host made with this layer starts at boot (the layer's own daemons).
    services: tuple[str, ...] = ()

    def chain(self) -> list[LayerSpec]:
        """This layer and its parents, top first (overlayfs lowerdir order)."""
        out: list[LayerSpec] = []
        spec: LayerSpec | None = self
        while spec is not None:
            out.append(spec)
            spec = spec.parent
        return out


BASE = LayerSpec(
    name="base",
    packages=BASE_PACKAGES,
    recipe_files=("base-preseed.txt", "dpkg-excludes.cfg", "base-customize.sh"),
    customize="base-customize.sh",
    debconf="base-preseed.txt",
    dpkg_excludes="dpkg-excludes.cfg",
)


# Lists hosts: Debian's Mailman 3 core, REST on 127.0.0.1 only (the panel tunnels over SSH),
# only the runners a post needs (45 s to build, ~140 MB).
MAILMAN3 = LayerSpec(
    name="mailman3",
    packages=("mailman3",),
    parent=BASE,
    recipe_files=("mailman3-customize.sh",),
    customize="mailman3-customize.sh",
    services=("mailman3",),
)


def default_workdir() -> Path:
    """Persistent work dir, so developer machines build the base once."""
    path = os.environ.get("KONBIT_TESTHOSTS_DIR") or "/var/tmp/konbit-testhosts"  # noqa: S108
    return Path(path)


def layer_stamp(spec: LayerSpec) -> str:
    """Hash of everything that defines a layer, parents included."""
    h = hashlib.sha256()
    h.update(f"konbit-testhosts {RECIPE_VERSION} {SUITE} {spec.variant}\n".encode())
    h.update(f"name {spec.name}\n".encode())
    h.update(("packages " + " ".join(sorted(spec.packages)) + "\n").encode())
    h.update(("extra " + " ".join(spec.extra) + "\n").encode())
    for name in sorted(
        {*spec.recipe_files, *_opt(spec.customize, spec.debconf, spec.dpkg_excludes)}
    ):
        h.update(f"file {name}\n".encode())
        h.update((FILES / name).read_bytes())
    if spec.parent is not None:
        h.update(f"parent {layer_stamp(spec.parent)}\n".encode())
    return h.hexdigest()[:16]


def _opt(*names: str | None) -> list[str]:
    return [n for n in names if n]


# --- process liveness (shared with lab.py) ---------------------------------------------


def process_start_time(pid: int) -> int | None:
    """Start time of a process in clock ticks, or None if it is gone (guards pid reuse)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rsplit(")", 1)[1].split()[19])


def owner_alive(record: dict[str, object]) -> bool:
    """Whether the process that wrote a record (a lab, a build) still runs."""
    pid, start = record.get("owner_pid"), record.get("owner_start")
    if not isinstance(pid, int) or not isinstance(start, int):
        return False
    return process_start_time(pid) == start


def owner_fields() -> dict[str, object]:
    """Fields that identify this process in a record."""
    return {"owner_pid": os.getpid(), "owner_start": process_start_time(os.getpid())}


_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl  # looked up here, not in the forked child


def die_with_parent() -> Callable[[], None]:
    """A preexec_fn: the child gets SIGKILL when the thread that started it dies.

    Keeps a killed test run from leaving hosts or builds behind.
    """
    parent = os.getpid()

    def preexec() -> None:
        if _prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
            os._exit(127)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os._exit(127)

    return preexec


def rmtree_unmounted(path: Path) -> None:
    """Remove a tree, refusing if anything is mounted below it (a /dev bind, say)."""
    prefix = str(path.resolve()) + "/"
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        mountpoint = line.split()[4].replace("\\040", " ")
        if mountpoint.startswith(prefix) or mountpoint == prefix[:-1]:
            raise TestHostError(f"refusing to delete {path}: {mountpoint} is mounted")

    def gone_already(_fn: object, _path: str, exc_info: tuple[type, BaseException, object]) -> None:
        # Two labs collecting the same dead host dir at once: the other one removed it.
        if not isinstance(exc_info[1], FileNotFoundError):
            raise exc_info[1]

    shutil.rmtree(path, onerror=gone_already)


def live_host_records(workdir: Path) -> list[dict[str, object]]:
    """host.json of every host dir whose owning lab process still runs."""
    out: list[dict[str, object]] = []
    for rec_path in sorted((workdir / "hosts").glob("*/host.json")):
        try:
            rec = json.loads(rec_path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(rec, dict) and owner_alive(rec):
            out.append(rec)
    return out


# --- building ----------------------------------------------------------------------------


def ensure_mmdebstrap() -> str:
    """Path of mmdebstrap, installing the Debian package if missing (we run as root)."""
    found = shutil.which("mmdebstrap")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "-q", "mmdebstrap"]
    if subprocess.run(install, env=env, capture_output=True, check=False).returncode != 0:
        subprocess.run(["apt-get", "update", "-q"], env=env, check=True, capture_output=True)
        done = subprocess.run(install, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise TestHostError(f"cannot install mmdebstrap:\n{done.stderr[-2000:]}")
    found = shutil.which("mmdebstrap")
    if not found:
        raise TestHostError("mmdebstrap installed but not on PATH")
    return found


def apt_sources_file() -> Path:
    """The machine's own apt sources, given to mmdebstrap as its mirror (no host names here)."""
    for candidate in (
        Path("/etc/apt/sources.list.d/debian.sources"),
        Path("/etc/apt/sources.list"),
    ):
        if candidate.is_file() and candidate.read_text().strip():
            return candidate
    raise TestHostError(
        "no apt sources file: /etc/apt/sources.list.d/debian.sources nor /etc/apt/sources.list"
    )


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Exclusive lock across processes (pytest-xdist workers share the work dir)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def layer_dir(workdir: Path, spec: LayerSpec) -> Path:
    return workdir / "layers" / f"{spec.name}-{layer_stamp(spec)}"


def ensure_layers(
    spec: LayerSpec, workdir: Path | None = None, *, log: TextIO | None = None
) -> list[Path]:
    """Root dirs of ``spec`` and its parents, top first, building what is missing."""
    workdir = workdir or default_workdir()
    roots: list[Path] = []
    for layer in reversed(spec.chain()):  # parents first
        roots.insert(0, _ensure_one(workdir, layer, roots, log))
    return roots


def _ensure_one(workdir: Path, spec: LayerSpec, lower: list[Path], log: TextIO | None) -> Path:
    final = layer_dir(workdir, spec)
    if (final / "stamp.json").is_file():
        return final / "root"
    with _locked(workdir / "layers" / ".lock"):
        if (final / "stamp.json").is_file():  # another process built it meanwhile
            return final / "root"
        _collect_garbage(workdir, spec)
        tmp = final.with_name(f".{final.name}.tmp-{os.getpid()}")
        if tmp.exists():
            rmtree_unmounted(tmp)
        tmp.mkdir(parents=True)
        (tmp / "builder.json").write_text(json.dumps(owner_fields()))
        started = time.monotonic()
        try:
            if spec.parent is None:
                _build_base(spec, tmp, log)
            else:
                _build_layer(spec, tmp, lower, log)
        except BaseException:
            shutil.rmtree(tmp / "work", ignore_errors=True)
            raise
        stamp = {
            "name": spec.name,
            "stamp": layer_stamp(spec),
            "packages": sorted(spec.packages),
            "seconds": round(time.monotonic() - started, 1),
            "built": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / "stamp.json").write_text(json.dumps(stamp, indent=2) + "\n")
        os.rename(tmp, final)  # atomic: a layer appears complete or not at all
        _say(log, f"built layer {final.name} in {stamp['seconds']} s")
    return final / "root"


def _say(log: TextIO | None, message: str) -> None:
    print(f"testhosts: {message}", file=log or sys.stderr, flush=True)


def _run_logged(argv: Sequence[str], logfile: Path, env: dict[str, str] | None = None) -> None:
    with open(logfile, "ab") as out:
        proc = subprocess.run(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            check=False,
            preexec_fn=die_with_parent(),  # only prctl runs in the child
        )
    if proc.returncode != 0:
        tail = logfile.read_text(errors="replace").splitlines()[-40:]
        raise TestHostError(
            f"{argv[0]} failed ({proc.returncode}); log {logfile}:\n" + "\n".join(tail)
        )


def _build_base(spec: LayerSpec, tmp: Path, log: TextIO | None) -> None:
    mmdebstrap = ensure_mmdebstrap()
    sources = apt_sources_file()
    hooks: list[str] = []
    if spec.debconf:
        preseed = shlex.quote(str(FILES / spec.debconf))
        hooks.append(f'--essential-hook=chroot "$1" debconf-set-selections < {preseed}')
    if spec.customize:
        hooks.append(f'--customize-hook=sh {shlex.quote(str(FILES / spec.customize))} "$1"')
    dpkg = [f"--dpkgopt={FILES / spec.dpkg_excludes}"] if spec.dpkg_excludes else []
    argv = [
        # Private mount namespace: mounts mmdebstrap makes die with it, even if killed.
        "unshare", "--mount", "--fork", "--kill-child",
        mmdebstrap,
        "--mode=root",
        "--format=directory",
        f"--variant={spec.variant}",
        "--include=" + ",".join(spec.packages),
        *dpkg,
        *hooks,
        SUITE,
        str(tmp / "root"),
        str(sources),
    ]  # fmt: skip
    _say(log, f"building base with mmdebstrap (log: {tmp / 'build.log'}) ...")
    _run_logged(argv, tmp / "build.log")


def _build_layer(spec: LayerSpec, tmp: Path, lower: list[Path], log: TextIO | None) -> None:
    root, work, merged = tmp / "root", tmp / "work", tmp / "merged"
    for d in (root, work, merged):
        d.mkdir()
    env = {
        "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
        "TH_LOWER": ":".join(str(p) for p in lower),
        "TH_UPPER": str(root),
        "TH_WORK": str(work),
        "TH_MERGED": str(merged),
        "TH_PACKAGES": " ".join(spec.packages),
        "TH_CUSTOMIZE": str(FILES / spec.customize) if spec.customize else "",
    }
    argv = ["unshare", "--mount", "--fork", "--kill-child", "sh", str(FILES / "layer-build.sh")]
    _say(log, f"building layer {spec.name} (log: {tmp / 'build.log'}) ...")
    _run_logged(argv, tmp / "build.log", env)
    shutil.rmtree(work, ignore_errors=True)  # overlay work dir: root-only, not needed
    merged.rmdir()


def _collect_garbage(workdir: Path, spec: LayerSpec) -> None:
    """Delete outdated builds of ``spec`` that no live host uses, and dead half-builds."""
    in_use: set[str] = set()
    for rec in live_host_records(workdir):
        layers = rec.get("layers")
        if isinstance(layers, list):
            in_use.update(str(Path(p).parent) for p in layers)
    current = layer_dir(workdir, spec)
    for old in (workdir / "layers").glob(f"{spec.name}-*"):
        if old != current and str(old) not in in_use and (old / "stamp.json").is_file():
            rmtree_unmounted(old)
    for half in (workdir / "layers").glob(f".{spec.name}-*.tmp-*"):
        try:
            rec = json.loads((half / "builder.json").read_text())
        except (OSError, ValueError):
            rec = {}
        if not owner_alive(rec):
            rmtree_unmounted(half)
