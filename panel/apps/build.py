"""Build a platform artifact: an application's web root at one version, as a deterministic
.tar.gz named by its sha256, from Debian's packages or from an archive a sysadmin provides.

Hosts unpack the artifact read-only and link each site's document root to it, so the tree
must be self-contained (no link out of it: Debian's packages link into other packages and
into /etc, /var/lib) and must read each site's own configuration from the site's document
root (the per-app dispatchers below), never from the platform.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import stat
import subprocess
import tarfile
import tempfile
import time
import zipfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal

from panel.apps.detect import PROBES, Detected, detect

MANIFEST = ".konbit-platform.json"

# Where a wiki keeps its configuration and its pages (media, caches...): its document
# root's .dokuwiki/{conf,data}, not a directory beside the document root, because backups,
# restores, clones and moves carry a site's document root; and not conf/ and data/ there
# as upstream has them, because upstream protects those with .htaccess files nginx
# ignores, while both vhost templates deny every path with a component starting with a
# dot (/.dokuwiki/... answers 403 on nginx and apache2 alike). The install makes it 0700.
DOKUWIKI_SITE = ".dokuwiki"

# Top-level names each site keeps itself (never linked to the platform), and the
# directories made for each site.
SITE_OWN: dict[str, tuple[str, ...]] = {
    "wordpress": ("wp-config.php", "wp-content", ".htaccess"),
    "mediawiki": ("LocalSettings.php", "images", "cache"),
    # DokuWiki: the platform's conf/ (defaults), data/ (a new wiki's skeleton), inc/, bin/
    # and vendor/ are never linked into a document root either (upstream denies them by
    # .htaccess): PHP reaches them through DOKU_INC, the platform's real path.
    "dokuwiki": (DOKUWIKI_SITE, "conf", "data", "inc", "bin", "vendor", ".htaccess"),
}
SITE_DIRS: dict[str, tuple[str, ...]] = {
    "wordpress": ("wp-content", "wp-content/uploads"),
    "mediawiki": ("images",),
    "dokuwiki": (DOKUWIKI_SITE, f"{DOKUWIKI_SITE}/conf", f"{DOKUWIKI_SITE}/data"),
}

# Debian's packages for each app: the app's own, and those its files link into.
DEBIAN_PACKAGES: dict[str, tuple[str, ...]] = {
    "wordpress": (
        "wordpress",
        "wordpress-theme-twentytwentythree",  # the default theme (Recommends, not in wordpress)
        "php-getid3",  # wp-includes/ID3/*.php -> /usr/share/php/getid3
        "libjs-cropper",  # wp-includes/js/crop/* -> /usr/share/javascript/cropper
        "libjs-underscore",  # wp-includes/js/underscore*.js -> /usr/share/javascript/underscore
        "ca-certificates",  # wp-includes/certificates/ca-bundle.crt -> /etc/ssl/certs/...
    ),
    "mediawiki": ("mediawiki", "mediawiki-classes"),  # includes/ is split into -classes
    # DokuWiki's code names these by absolute paths (see _DOKUWIKI_DEPS). Unpacked in
    # this order: dokuwiki's own link usr/share/php/phpseclib is replaced by the real
    # directory of php-phpseclib (the other way round, tar refuses).
    "dokuwiki": (
        "dokuwiki",
        "libjs-jquery",
        "libjs-jquery-ui",
        "libjs-jquery-cookie",
        "libphp-simplepie",
        "php-geshi",
        "php-phpseclib",
    ),
}
DEBIAN_APP_DIR = {
    "wordpress": "usr/share/wordpress",
    "mediawiki": "usr/share/mediawiki",
    "dokuwiki": "usr/share/dokuwiki",
}
_CA_BUNDLE = "wp-includes/certificates/ca-bundle.crt"
_MOZILLA_CERTS = "usr/share/ca-certificates/mozilla"
_DEFAULT_THEME = "wp-content/themes/twentytwentythree"
_PRINT_URI_RE = re.compile(r"^'(\S+)' (\S+) (\d+) SHA256:([0-9a-f]{64})$")
_PROBE_MAX = 1 << 20


class BuildError(Exception):
    """A build that cannot succeed as asked; the message says what the sysadmin can do."""


@dataclass(frozen=True)
class DebianSource:
    """The candidate version of a Debian package (as ``apt-cache policy`` shows it)."""

    package: Literal["wordpress", "mediawiki", "dokuwiki"]


@dataclass(frozen=True)
class ArchiveSource:
    """A .tar.gz, .tar.xz, .tar or .zip, with the sha256 the sysadmin expects of it."""

    path: Path
    sha256: str


Source = DebianSource | ArchiveSource


@dataclass(frozen=True)
class Built:
    """A platform artifact in the store."""

    app: str
    version: str
    sha256: str
    path: Path
    size: int
    source_text: str


def build(source: Source, store: Path, *, deb_cache: Path | None = None) -> Built:
    """Build ``source`` into ``store/<sha256>.tar.gz``; Debian packages are cached in
    ``deb_cache`` (``store/debs`` unless given), so a rebuild downloads nothing."""
    store.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="konbit-build-", dir=store) as tmp:
        staging = Path(tmp) / "staging"
        staging.mkdir()
        if isinstance(source, DebianSource):
            root, found, text = _from_debian(source, staging, deb_cache or store / "debs")
        else:
            root, found, text = _from_archive(source, staging)
        return _pack(root, found, text, store)


# Debian ---------------------------------------------------------------------------------


def _run(args: list[str], cwd: Path, what: str) -> str:
    try:
        done = subprocess.run(args, cwd=cwd, capture_output=True, text=True, check=False)
    except FileNotFoundError as exc:
        raise BuildError(f"{what}: {args[0]} is missing; install it (apt-get install apt)") from exc
    if done.returncode != 0:
        errors = "; ".join(line for line in done.stderr.splitlines() if line.startswith("E:"))
        raise BuildError(
            f"{what} failed ({' '.join(args)}): {errors or done.stderr.strip()[-500:]}. "
            "Check apt's sources on the panel machine and run `apt-get update`."
        )
    return done.stdout


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _fetch_debs(packages: tuple[str, ...], cache: Path) -> dict[str, Path]:
    """The candidate .deb of each package, downloaded into ``cache`` unless already there.
    apt's --print-uris gives each file's sha256 from its signed lists, so a cached file is
    checked exactly as apt would check a download."""
    cache.mkdir(parents=True, exist_ok=True)
    try:
        with _apt_lists_steady():
            return _fetch_locked(packages, cache)
    except BuildError:
        if os.geteuid() != 0:
            raise
    # apt's lists may be missing or stale (a fresh machine, lists cleaned): as root, read
    # them again once and try again; a second failure is the sysadmin's to read.
    _run(["apt-get", "update", "-qq"], cache, "apt-get update")
    with _apt_lists_steady():
        return _fetch_locked(packages, cache)


APT_LISTS_LOCK = Path("/var/lib/apt/lists/lock")


@contextmanager
def _apt_lists_steady(timeout: float = 300.0) -> Iterator[None]:
    """apt's lists left alone while they are read: ``apt-get update`` (unattended-upgrades',
    a person's) holds a write lock on ``lists/lock`` while it swaps them, and a download
    that reads them half-swapped fails ("Unable to locate package").  A read lock here
    waits for an update to end and keeps the next one out until the download is done."""
    fd = os.open(APT_LISTS_LOCK, os.O_RDWR | os.O_CREAT, 0o640)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.lockf(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise BuildError(
                        f"apt's lists stayed locked for {timeout:.0f} s (an apt-get update "
                        "running?): build the platform again when it is done"
                    ) from None
                time.sleep(0.5)
        yield
    finally:
        os.close(fd)  # drops the lock


def _fetch_locked(packages: tuple[str, ...], cache: Path) -> dict[str, Path]:
    with tempfile.TemporaryDirectory(dir=cache) as empty:  # apt lists only absent files
        out = _run(["apt-get", "download", "--print-uris", *packages], Path(empty), "apt")
    wanted: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        match = _PRINT_URI_RE.match(line.strip())
        if match:
            _uri, filename, _size, digest = match.groups()
            wanted[filename.split("_", 1)[0]] = (filename, digest)
    missing_info = [p for p in packages if p not in wanted]
    if missing_info:
        raise BuildError(
            f"apt gave no download for {', '.join(missing_info)}: run `apt-get update` on the "
            "panel machine and check that Debian's main archive is in apt's sources"
        )
    todo = []
    for package, (filename, digest) in wanted.items():
        path = cache / filename
        if path.is_file() and _sha256(path) == digest:
            continue
        path.unlink(missing_ok=True)
        todo.append(package)
    if todo:
        _run(["apt-get", "download", *todo], cache, "Downloading Debian packages")
    debs = {}
    for package, (filename, digest) in wanted.items():
        path = cache / filename
        if not path.is_file() or _sha256(path) != digest:
            raise BuildError(
                f"{path} is missing or does not match apt's sha256 {digest}: delete it and "
                "build again"
            )
        debs[package] = path
    return debs


def _from_debian(source: DebianSource, staging: Path, cache: Path) -> tuple[Path, Detected, str]:
    app = source.package
    debs = _fetch_debs(DEBIAN_PACKAGES[app], cache)
    for deb in (debs[package] for package in DEBIAN_PACKAGES[app]):  # in the order given
        _run(["dpkg-deb", "-x", str(deb), str(staging)], staging, f"Unpacking {deb.name}")
    version = _run(["dpkg-deb", "-f", str(debs[app]), "Version"], staging, "dpkg-deb").strip()
    root = staging / DEBIAN_APP_DIR[app]
    if app == "wordpress":
        _debian_wordpress(root, staging)
    elif app == "dokuwiki":
        _debian_dokuwiki(root, staging)
    # the rules first: they drop Debian's links into /etc and /var/lib (per-site things)
    _apply_rules(app, root, _stamp(root, app))
    _inline_links(root, staging)
    if app == "dokuwiki":
        _debian_dokuwiki_paths(root)
    found = _detect_in(root)
    if found is None or found.app != app:
        raise BuildError(
            f"Debian's {app} package {version} does not look like {app} any more (detected "
            f"{found}): its layout changed, so this builder needs updating"
        )
    if app == "wordpress" and not (root / _DEFAULT_THEME / "style.css").is_file():
        raise BuildError(
            f"{_DEFAULT_THEME} is missing: wordpress-theme-twentytwentythree no longer ships "
            "it; update DEBIAN_PACKAGES with the package of the default theme"
        )
    return root, found, f"Debian package {app} {version}"


def _debian_wordpress(root: Path, staging: Path) -> None:
    """Debian links the CA bundle to /etc/ssl (made by update-ca-certificates when
    installed): rebuild it the same way from the ca-certificates package."""
    bundle = root / _CA_BUNDLE
    if bundle.is_symlink():
        certs = sorted((staging / _MOZILLA_CERTS).glob("*.crt"))
        if not certs:
            raise BuildError(f"no certificates in {_MOZILLA_CERTS} of package ca-certificates")
        parts = []
        for cert in certs:
            data = cert.read_bytes()
            parts.append(data if data.endswith(b"\n") else data + b"\n")
        bundle.unlink()
        bundle.write_bytes(b"".join(parts))
        stamp = max(cert.stat().st_mtime for cert in certs)
        os.utime(bundle, (stamp, stamp))


# Debian's DokuWiki names other packages' files by absolute paths in its PHP (jquery.php,
# js.php, the composer autoloader...): each is copied to vendor/debian/<path under
# /usr/share> and the paths rewritten to it (_debian_dokuwiki_paths).
_DOKUWIKI_DEPS = (
    "usr/share/javascript/jquery/jquery.min.js",
    "usr/share/javascript/jquery-ui/jquery-ui.min.js",
    "usr/share/javascript/jquery-ui/ui/i18n",
    "usr/share/javascript/jquery-cookie/jquery.cookie.js",
    "usr/share/php/phpseclib",
    "usr/share/php/simplepie",
    "usr/share/php-geshi",
)
_DOKUWIKI_VENDOR = "vendor/debian"
_DOKUWIKI_CONF = "etc/dokuwiki"  # Debian's conf/, DOKU_MAIN_CONF
_DOKUWIKI_DATA = "var/lib/dokuwiki/data"  # the new wiki's skeleton (upstream's data/)
# Each wiki's own, never the platform's (an archive of a live wiki may hold them).
_DOKUWIKI_SITE_CONF = (
    "local.php",
    "local.protected.php",
    "users.auth.php",
    "acl.auth.php",
    "plugins.local.php",
    "plugins.protected.php",
    "userstyle.css",
    "userprint.css",
)
_DOKUWIKI_SAVEDIR_RE = re.compile(r"^(\$conf\['savedir'\]\s*=\s*)'/var/lib/dokuwiki/data'", re.M)
_USR_SHARE_RE = re.compile(r"(?:\$vendorDir\s*\.\s*)?'/usr/share/([^'\\]*)'(\s*\.)?")
_ABSOLUTE_RE = re.compile(r"""['"]/(?:usr/share|etc/dokuwiki|var/lib/dokuwiki)/""")


def _debian_dokuwiki(root: Path, staging: Path) -> None:
    """Upstream's layout back from Debian's: conf/ (the defaults, from /etc/dokuwiki, each
    wiki's own files left out) and data/ (the skeleton a new wiki starts from, from
    /var/lib/dokuwiki); links to the other packages' files that the code names by absolute
    paths (copied by _inline_links). The testing plugin goes: Debian disables it by making
    its directory root's alone, which a platform's modes do not keep."""
    for name in ("conf", "data", _DOKUWIKI_VENDOR):
        if (root / name).exists() or (root / name).is_symlink():
            raise BuildError(
                f"Debian's dokuwiki now ships {name}/ itself: its layout changed, so this "
                "builder needs updating"
            )
    conf, data = staging / _DOKUWIKI_CONF, staging / _DOKUWIKI_DATA
    if not (conf / "dokuwiki.php").is_file() or not (data / "pages").is_dir():
        raise BuildError(
            f"Debian's dokuwiki has no {_DOKUWIKI_CONF}/dokuwiki.php or {_DOKUWIKI_DATA}/pages "
            "any more: its layout changed, so this builder needs updating"
        )
    (root / "conf").mkdir()
    for path in sorted(conf.iterdir()):
        if path.is_file() and not path.is_symlink() and path.name not in _DOKUWIKI_SITE_CONF:
            shutil.copy2(path, root / "conf" / path.name)
    defaults = root / "conf" / "dokuwiki.php"
    text, count = _DOKUWIKI_SAVEDIR_RE.subn(r"\1'./data'", defaults.read_text(encoding="utf-8"))
    if count != 1:
        raise BuildError(
            "conf/dokuwiki.php of Debian's dokuwiki no longer sets savedir to "
            "/var/lib/dokuwiki/data: its layout changed, so this builder needs updating"
        )
    mtime = defaults.stat().st_mtime
    defaults.write_text(text, encoding="utf-8")
    os.utime(defaults, (mtime, mtime))
    shutil.copytree(data, root / "data", symlinks=True)
    _remove(staging / "var/lib/dokuwiki/lib/plugins/testing")
    for dep in _DOKUWIKI_DEPS:
        link = root / _DOKUWIKI_VENDOR / PurePosixPath(dep).relative_to("usr/share")
        link.parent.mkdir(parents=True, exist_ok=True)
        link.symlink_to("/" + dep)


def _debian_dokuwiki_paths(root: Path) -> None:
    """Each '/usr/share/...' path in the PHP becomes the copy's path relative to the file
    (``__DIR__ . '...'``: a constant expression, as composer's static autoloader needs);
    a path to nothing in the platform, or any other path into Debian's system (/etc,
    /var/lib), fails the build, naming the files."""
    bad: list[str] = []
    for path in sorted(_walk(root)):
        if path.suffix != ".php" or path.is_symlink() or not path.is_file():
            continue
        text = path.read_text(encoding="utf-8", errors="surrogateescape")
        if "/usr/share/" not in text and not _ABSOLUTE_RE.search(text):
            continue
        up = os.path.relpath(root, path.parent)
        rel = path.relative_to(root).as_posix()

        def local(match: re.Match[str], rel: str = rel, up: str = up) -> str:
            target = f"{_DOKUWIKI_VENDOR}/{match.group(1)}"
            concatenated = match.group(2) is not None  # a prefix: '.../datepicker-' . $lang
            found = (root / target).parent.is_dir() if concatenated else (root / target).exists()
            if not found:
                bad.append(f"{rel}: /usr/share/{match.group(1)}")
            prefix = "" if up == "." else f"/{up}"
            return f"__DIR__ . '{prefix}/{target}'" + (match.group(2) or "")

        new = _USR_SHARE_RE.sub(local, text)
        bad.extend(f"{rel}: {m.group(0)}..." for m in _ABSOLUTE_RE.finditer(new))
        if new != text:
            mtime = path.stat().st_mtime
            path.write_text(new, encoding="utf-8", errors="surrogateescape")
            os.utime(path, (mtime, mtime))
    if bad:
        raise BuildError(
            "Debian's dokuwiki names files outside the platform: "
            + ", ".join(bad)
            + ". Add their packages to DEBIAN_PACKAGES and their paths to _DOKUWIKI_DEPS"
        )


def _resolve(link: Path, staging: Path) -> Path | None:
    """Where ``link`` leads, reading absolute targets (and ``..`` at the top) as paths in
    ``staging`` (the unpacked packages); None if it leads nowhere or loops."""
    rel = link.relative_to(staging)
    done: list[str] = []
    todo = deque([*rel.parent.parts, *PurePosixPath(os.readlink(link)).parts])
    hops = 0
    while todo:
        part = todo.popleft()
        if part == "/":
            done = []
        elif part == "..":
            if not done:
                return None
            done.pop()
        elif part != ".":
            here = staging.joinpath(*done, part)
            if here.is_symlink():
                hops += 1
                if hops > 40:
                    return None
                todo.extendleft(reversed(PurePosixPath(os.readlink(here)).parts))
            else:
                done.append(part)
    found = staging.joinpath(*done)
    return found if found.exists() else None


def _inline_links(root: Path, staging: Path) -> None:
    """Make ``root`` self-contained: a link leading inside it becomes relative, a link into
    the other unpacked packages becomes a copy; anything else is an error naming them."""
    bad: list[str] = []
    for dirpath, dirnames, filenames in os.walk(root):
        for name in sorted(dirnames + filenames):
            path = Path(dirpath) / name
            if path.is_symlink():
                _replace_link(path, root, staging, bad)
    if bad:
        raise BuildError(
            "links lead outside the application and the packages unpacked with it: "
            + ", ".join(bad)
            + ". Add the packages that provide them to DEBIAN_PACKAGES, or a rule for them"
        )


def _replace_link(path: Path, root: Path, staging: Path, bad: list[str]) -> None:
    target = _resolve(path, staging)
    if target is None:
        bad.append(f"{path.relative_to(staging)} -> {os.readlink(path)}")
        return
    path.unlink()
    if target.is_relative_to(root):
        path.symlink_to(os.path.relpath(target, path.parent))
    else:
        _copy(target, path, root, staging, bad)


def _copy(src: Path, dest: Path, root: Path, staging: Path, bad: list[str]) -> None:
    """A real copy of ``src`` (links inside resolved as in ``_inline_links``)."""
    if src.is_dir():
        dest.mkdir()
        for child in sorted(src.iterdir()):
            if child.is_symlink():
                target = _resolve(child, staging)
                if target is None:
                    bad.append(f"{child.relative_to(staging)} -> {os.readlink(child)}")
                elif target.is_relative_to(root):
                    (dest / child.name).symlink_to(os.path.relpath(target, dest))
                else:
                    _copy(target, dest / child.name, root, staging, bad)
            else:
                _copy(child, dest / child.name, root, staging, bad)
        shutil.copystat(src, dest)
    else:
        shutil.copy2(src, dest)


# Archives -------------------------------------------------------------------------------


def _from_archive(source: ArchiveSource, staging: Path) -> tuple[Path, Detected, str]:
    path = source.path
    if not path.is_file():
        raise BuildError(f"{path} does not exist or is not a file: give the archive's path")
    expected = source.sha256.strip().lower()
    actual = _sha256(path)
    if actual != expected:
        raise BuildError(
            f"{path.name}'s sha256 is {actual}, not the expected {expected}: the file is not "
            "the one you meant (or is corrupt); download it again and check its checksum"
        )
    if zipfile.is_zipfile(path):
        _extract_zip(path, staging)
    else:
        _extract_tar(path, staging)
    entries = list(staging.iterdir())
    root = staging
    if len(entries) == 1 and entries[0].is_dir() and not entries[0].is_symlink():
        root = entries[0]
    _check_links(root)
    found = _detect_in(root)
    if found is None:
        raise BuildError(
            f"{path.name} holds no application this builder knows: looked for "
            f"{', '.join(PROBES)} at its top level (or in its single top-level directory)"
        )
    _apply_rules(found.app, root, _stamp(root, found.app))
    return root, found, f"archive {path.name} (sha256 {actual})"


def _member_path(name: str, archive: str) -> PurePosixPath:
    """A member's name, refused unless it is a plain relative path."""
    clean = name.rstrip("/")
    path = PurePosixPath(clean)
    if (
        not clean
        or "\0" in clean
        or "\\" in clean
        or path.is_absolute()
        or re.match(r"^[A-Za-z]:", clean)
        or ".." in path.parts
    ):
        raise BuildError(
            f"{archive} has an unsafe member {name!r} (absolute, or with ..): refusing to "
            "unpack it; use the application's official archive"
        )
    return PurePosixPath(*[p for p in path.parts if p != "."])


def _safe_target(link: PurePosixPath, target: str, archive: str) -> None:
    """Refuse an absolute link or one climbing out (chains are checked once unpacked)."""
    inside = os.path.normpath(os.path.join(str(link.parent), target))
    if not target or target.startswith("/") or inside == ".." or inside.startswith("../"):
        raise BuildError(
            f"{archive} has a link {link} -> {target} leading outside the application: "
            "refusing to unpack it; a platform must be self-contained"
        )


def _dest(staging: Path, rel: PurePosixPath, archive: str) -> Path:
    """Where a member goes; refused if a directory on the way is a link (no writing
    through links, wherever they lead)."""
    current = staging
    for part in rel.parts[:-1]:
        current = current / part
        if current.is_symlink() or (current.exists() and not current.is_dir()):
            raise BuildError(f"{archive}: {rel} would be unpacked through a link or a file")
        current.mkdir(exist_ok=True)
    dest = staging / rel
    if dest.is_symlink() or (dest.exists() and not dest.is_dir()):
        raise BuildError(f"{archive} holds {rel} twice: refusing an ambiguous archive")
    return dest


def _extract_tar(path: Path, staging: Path) -> None:
    name = path.name
    links: list[tuple[PurePosixPath, str]] = []
    try:
        with tarfile.open(path, "r:*") as tar:
            for member in tar:
                rel = _member_path(member.name, name)
                if not rel.parts:
                    continue
                if member.isdir():
                    _dest(staging, rel, name).mkdir(exist_ok=True)
                elif member.isreg():
                    dest = _dest(staging, rel, name)
                    data = tar.extractfile(member)
                    assert data is not None
                    with data, dest.open("wb") as out:
                        shutil.copyfileobj(data, out)
                    os.chmod(dest, 0o755 if member.mode & 0o111 else 0o644)
                    os.utime(dest, (member.mtime, member.mtime))
                elif member.issym():
                    _safe_target(rel, member.linkname, name)
                    links.append((rel, member.linkname))
                elif member.islnk():
                    target = _member_path(member.linkname, name)
                    source = staging / target
                    if source.is_symlink() or not source.is_file():
                        raise BuildError(f"{name}: hard link {rel} to {target}, not a file")
                    shutil.copy2(source, _dest(staging, rel, name))
                else:
                    raise BuildError(
                        f"{name} holds {rel}, a device, fifo or other special file: refusing "
                        "it; a platform holds only files, directories and relative links"
                    )
    except (tarfile.TarError, OSError, EOFError) as exc:
        raise BuildError(f"cannot read {name} as a tar or zip archive: {exc}") from exc
    _make_links(staging, links, name)


def _extract_zip(path: Path, staging: Path) -> None:
    name = path.name
    links: list[tuple[PurePosixPath, str]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                rel = _member_path(info.filename, name)
                if not rel.parts:
                    continue
                mode = info.external_attr >> 16
                kind = stat.S_IFMT(mode)
                if info.is_dir() or kind == stat.S_IFDIR:
                    _dest(staging, rel, name).mkdir(exist_ok=True)
                elif kind == stat.S_IFLNK:
                    target = zf.read(info).decode("utf-8", "strict")
                    _safe_target(rel, target, name)
                    links.append((rel, target))
                elif kind in (0, stat.S_IFREG):
                    dest = _dest(staging, rel, name)
                    with zf.open(info) as data, dest.open("wb") as out:
                        shutil.copyfileobj(data, out)
                    os.chmod(dest, 0o755 if mode & 0o111 else 0o644)
                    stamp = _zip_mtime(info)
                    os.utime(dest, (stamp, stamp))
                else:
                    raise BuildError(f"{name} holds {rel}, a special file: refusing it")
    except (zipfile.BadZipFile, OSError, UnicodeDecodeError) as exc:
        raise BuildError(f"cannot read {name} as a zip archive: {exc}") from exc
    _make_links(staging, links, name)


def _zip_mtime(info: zipfile.ZipInfo) -> float:
    try:
        return dt.datetime(*info.date_time, tzinfo=dt.UTC).timestamp()
    except ValueError:
        return 0.0


def _make_links(staging: Path, links: list[tuple[PurePosixPath, str]], archive: str) -> None:
    """Links last, so no member was written through one."""
    for rel, target in links:
        dest = _dest(staging, rel, archive)
        if dest.exists():
            raise BuildError(
                f"{archive} writes through a link or holds {rel} twice (a directory and a "
                "link): refusing an ambiguous archive"
            )
        dest.symlink_to(target)


def _check_links(root: Path) -> None:
    """Every link relative and leading to something inside ``root``, chains included."""
    real_root = root.resolve()
    bad = []
    for path in _walk(root):
        if path.is_symlink():
            target = os.readlink(path)
            real = Path(os.path.realpath(path))
            if target.startswith("/") or not real.is_relative_to(real_root) or not real.exists():
                bad.append(f"{path.relative_to(root)} -> {target}")
    if bad:
        raise BuildError(
            "links lead outside the application or nowhere: "
            + ", ".join(bad)
            + ". A platform must be self-contained: replace them by the files they point to"
        )


# Per-app rules --------------------------------------------------------------------------


def _dispatcher(config: str) -> str:
    """PHP standing in the platform for the site's own ``config``, which it requires from the
    site's document root (the platform is shared, the configuration is per site). The
    closure keeps its variables out of the application's globals; the ``require`` stays at
    file scope, so the site's config defines globals (``$table_prefix``) as it expects."""
    return f"""<?php
// Konbit platform: each site keeps its own {config} in its document root; this shared,
// read-only file only loads it.
require (static function (): string {{
    $docroot = ($_SERVER['DOCUMENT_ROOT'] ?? '') ?: getenv('DOCUMENT_ROOT');
    $config = is_string($docroot) && $docroot !== '' ? rtrim($docroot, '/') . '/{config}' : '';
    $problem = null;
    if ($config === '') {{
        $problem = 'the document root is unknown (DOCUMENT_ROOT is not set)';
    }} elseif (!is_file($config)) {{
        $problem = "{config} is missing from the site's document root";
    }} elseif (realpath($config) === __FILE__) {{
        $problem = "the site's {config} is the platform's own (a link to it?)";
    }}
    if ($problem !== null) {{
        if (PHP_SAPI === 'cli') {{
            fwrite(STDERR, "This site is not configured: $problem.\\n");
            exit(1);
        }}
        http_response_code(503);
        header('Content-Type: text/plain; charset=utf-8');
        echo "This site is not configured yet: {config} is missing.\\n";
        exit;
    }}
    return $config;
}})();
"""


_MEDIAWIKI_PLATFORM_SETTINGS = """<?php
// Konbit platform defaults, read by MediaWiki before LocalSettings.php: uploads go to the
// site's own images/ (the platform is read-only and shared); no file cache on the platform.
$konbitDocroot = ($_SERVER['DOCUMENT_ROOT'] ?? '') ?: getenv('DOCUMENT_ROOT');
if (is_string($konbitDocroot) && $konbitDocroot !== '') {
    $wgUploadDirectory = rtrim($konbitDocroot, '/') . '/images';
}
unset($konbitDocroot);
$wgCacheDirectory = false;
"""


# DokuWiki reads inc/preload.php first of all: here it points DOKU_CONF at the site's own
# conf/ and takes the defaults (config_cascade's "default" files) from the platform's.
_DOKUWIKI_PRELOAD = """<?php
// Konbit platform: one read-only DokuWiki serves many wikis. Each keeps its configuration
// in <document root>/.dokuwiki/conf/ and its pages, media and caches in .dokuwiki/data/
// (conf/konbit.protected.php); the defaults are this platform's conf/.
if (!defined('DOKU_CONF')) {
    define('DOKU_CONF', (static function (): string {
        $docroot = ($_SERVER['DOCUMENT_ROOT'] ?? '') ?: getenv('DOCUMENT_ROOT');
        $dir = is_string($docroot) && $docroot !== ''
            ? rtrim($docroot, '/') . '/.dokuwiki/conf/' : '';
        $problem = null;
        if ($dir === '') {
            $problem = 'the document root is unknown (DOCUMENT_ROOT is not set)';
        } elseif (!is_file($dir . 'local.php')) {
            $problem = ".dokuwiki/conf/local.php is missing from the site's document root";
        }
        if ($problem !== null) {
            if (PHP_SAPI === 'cli') {
                fwrite(STDERR, "This wiki is not configured: $problem.\\n");
                exit(1);
            }
            http_response_code(503);
            header('Content-Type: text/plain; charset=utf-8');
            echo "This wiki is not configured yet.\\n";
            exit;
        }
        return $dir;
    })());
}
(static function (): void {
    global $config_cascade;
    $platform = dirname(__DIR__) . '/conf/';
    $site = DOKU_CONF;
    $cascade = [
        'main' => [
            'default' => [$platform . 'dokuwiki.php'],
            'local' => [$site . 'local.php'],
            'protected' => [$site . 'local.protected.php', $platform . 'konbit.protected.php'],
        ],
        'manifest' => [
            'default' => [$platform . 'manifest.json'],
            'local' => [$site . 'manifest.local.json'],
        ],
        'plugins' => [
            'default' => [$platform . 'plugins.php'],
            'local' => [$site . 'plugins.local.php'],
            'protected' => [$platform . 'plugins.required.php', $site . 'plugins.protected.php'],
        ],
    ];
    $lists = ['acronyms', 'entities', 'interwiki', 'mime', 'scheme', 'smileys', 'wordblock'];
    foreach ($lists as $k) {
        $cascade[$k] = ['default' => [$platform . "$k.conf"], 'local' => [$site . "$k.local.conf"]];
    }
    foreach (['license', 'mediameta'] as $k) {
        $cascade[$k] = ['default' => [$platform . "$k.php"], 'local' => [$site . "$k.local.php"]];
    }
    $config_cascade = array_merge(is_array($config_cascade) ? $config_cascade : [], $cascade);
})();
"""

# Loaded after the site's own settings: its pages stay its own whatever they say.
_DOKUWIKI_PROTECTED = """<?php
// Konbit platform: each wiki's pages, media and caches are its own, beside its conf/
// (<document root>/.dokuwiki/data); set here, after the wiki's own settings.
$conf['savedir'] = dirname(DOKU_CONF) . '/data';
"""


def _remove(path: Path) -> None:
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)


def _write(path: Path, text: str, stamp: float) -> None:
    _remove(path)
    path.write_text(text, encoding="utf-8")
    os.utime(path, (stamp, stamp))


def _apply_rules(app: str, root: Path, stamp: float) -> None:
    if app == "wordpress":
        if (root / ".htaccess").is_symlink():
            (root / ".htaccess").unlink()
        _write(root / "wp-config.php", _dispatcher("wp-config.php"), stamp)
        content = root / "wp-content"
        if content.is_symlink() or (content.exists() and not content.is_dir()):
            raise BuildError("wp-content must be a real directory in a WordPress platform")
        for sub in ("themes", "plugins"):
            if (content / sub).is_symlink():
                raise BuildError(f"wp-content/{sub} must be a real directory, not a link")
            (content / sub).mkdir(parents=True, exist_ok=True)
        _remove(content / "uploads")
    elif app == "mediawiki":
        for name in ("images", "cache"):  # each site's own (Debian: links to /var/lib)
            _remove(root / name)
        if (root / "config").is_symlink():  # Debian's link to /var/lib/mediawiki/config
            (root / "config").unlink()
        _write(root / "LocalSettings.php", _dispatcher("LocalSettings.php"), stamp)
        _write(root / "includes" / "PlatformSettings.php", _MEDIAWIKI_PLATFORM_SETTINGS, stamp)
    elif app == "dokuwiki":
        if (root / ".htaccess").is_symlink():  # Debian's link to /etc/dokuwiki/htaccess
            (root / ".htaccess").unlink()
        # The web installer: Konbit installs (DW_INSTALL); left there, anyone could
        # configure a wiki whose install has not run yet.
        _remove(root / "install.php")
        conf = root / "conf"
        for need in ("conf/dokuwiki.php", "inc/init.php"):  # its defaults, its bootstrap
            if not (root / need).is_file() or (root / need).parent.is_symlink():
                raise BuildError(f"{need} is missing: this is not a whole DokuWiki tree")
        for name in _DOKUWIKI_SITE_CONF:
            _remove(conf / name)
        _write(root / "inc" / "preload.php", _DOKUWIKI_PRELOAD, stamp)
        _write(conf / "konbit.protected.php", _DOKUWIKI_PROTECTED, stamp)


def _detect_in(root: Path) -> Detected | None:
    real_root = root.resolve()

    def read(relpath: str) -> str | None:
        path = root / relpath
        try:
            real = path.resolve()
            if not real.is_relative_to(real_root) or not real.is_file():
                return None
            with real.open("rb") as f:
                return f.read(_PROBE_MAX).decode("utf-8", "replace")
        except OSError:
            return None

    return detect(read)


# Packing --------------------------------------------------------------------------------


def _walk(root: Path) -> Iterator[Path]:
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            yield Path(dirpath) / name


def _stamp(root: Path, app: str) -> float:
    """The mtime of files the build writes: the version file's, so a rebuild is identical."""
    probe = {
        "wordpress": "wp-includes/version.php",
        "mediawiki": "includes/Defines.php",
        "dokuwiki": "VERSION",
    }
    path = root / probe.get(app, "")
    return float(int(path.stat().st_mtime)) if app in probe and path.is_file() else 0.0


def _pack(root: Path, found: Detected, source_text: str, store: Path) -> Built:
    stamp = _stamp(root, found.app)
    _check_links(root)
    manifest = {
        "app": found.app,
        "version": found.version,
        "source": source_text,
        "site_own": list(SITE_OWN.get(found.app, ())),
        "site_dirs": list(SITE_DIRS.get(found.app, ())),
    }
    data = (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode()
    paths = sorted(_walk(root), key=lambda p: p.relative_to(root).parts)
    fd, tmp_name = tempfile.mkstemp(dir=store, prefix=".build-", suffix=".tar.gz")
    try:
        with (
            os.fdopen(fd, "wb") as raw,
            gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6) as gz,
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar,
        ):
            info = _info(MANIFEST, stamp)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
            for path in paths:
                _add(tar, root, path, stamp)
        digest = _sha256(Path(tmp_name))
        final = store / f"{digest}.tar.gz"
        os.chmod(tmp_name, 0o644)
        os.replace(tmp_name, final)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return Built(found.app, found.version, digest, final, final.stat().st_size, source_text)


def _info(name: str, mtime: float) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.mtime = int(mtime)
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    info.mode = 0o644
    return info


def _add(tar: tarfile.TarFile, root: Path, path: Path, stamp: float) -> None:
    rel = path.relative_to(root).as_posix()
    st = path.lstat()
    if stat.S_ISLNK(st.st_mode):
        info = _info(rel, stamp)
        info.type = tarfile.SYMTYPE
        info.linkname = os.readlink(path)
        info.mode = 0o777
        tar.addfile(info)
    elif stat.S_ISDIR(st.st_mode):
        info = _info(rel, stamp)  # directories' mtimes changed while building
        info.type = tarfile.DIRTYPE
        info.mode = 0o755
        tar.addfile(info)
    elif stat.S_ISREG(st.st_mode):
        info = _info(rel, st.st_mtime)
        info.size = st.st_size
        info.mode = 0o755 if st.st_mode & 0o111 else 0o644
        with path.open("rb") as f:
            tar.addfile(info, f)
    else:
        raise BuildError(f"{rel} is a device, fifo or socket: a platform cannot hold it")
