"""The platform builder: real Debian packages (integration: they reach apt's sources) and
archives made here (unit), down to the artifact's bytes."""

from __future__ import annotations

import hashlib
import io
import json
import os
import posixpath
import re
import shutil
import subprocess
import tarfile
import time
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest

from panel.apps.build import (
    MANIFEST,
    ArchiveSource,
    BuildError,
    Built,
    DebianSource,
    _debian_dokuwiki_paths,
    _inline_links,
    build,
)
from panel.apps.detect import Detected, detect

WP_VERSION_PHP = "<?php\n/**\n * The WordPress version string.\n */\n$wp_version = '6.4.3';\n"
MW_DEFINES_PHP = "<?php\ndefine( 'MW_VERSION', '1.41.0' );\n"


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _members(built: Built) -> dict[str, tarfile.TarInfo]:
    with tarfile.open(built.path) as tar:
        return {m.name: m for m in tar.getmembers()}


def _read(built: Built, name: str) -> str:
    with tarfile.open(built.path) as tar:
        f = tar.extractfile(name)
        assert f is not None
        return f.read().decode()


def _assert_clean(built: Built) -> None:
    """What every artifact must be: named by its sha256, root-owned, no special modes, and
    no link leaving the tree."""
    assert built.path.name == f"{built.sha256}.tar.gz"
    assert _sha256(built.path) == built.sha256
    assert built.size == built.path.stat().st_size
    members = _members(built)
    names = list(members)
    assert names[0] == MANIFEST
    assert names == sorted(names, key=lambda n: n.split("/")) or names[1:] == sorted(
        names[1:], key=lambda n: n.split("/")
    )
    for m in members.values():
        assert (m.uid, m.gid, m.uname, m.gname) == (0, 0, "root", "root"), m.name
        assert not m.name.startswith(("/", "./")) and ".." not in m.name.split("/")
        if m.isdir():
            assert m.mode == 0o755, m.name
        elif m.isfile():
            assert m.mode in (0o644, 0o755), m.name
        else:
            assert m.issym(), m.name
            assert not m.linkname.startswith("/"), (m.name, m.linkname)
            target = posixpath.normpath(posixpath.join(posixpath.dirname(m.name), m.linkname))
            assert not target.startswith(".."), (m.name, m.linkname)
            assert target in members, (m.name, m.linkname)


def _manifest(built: Built) -> dict[str, object]:
    return json.loads(_read(built, MANIFEST))  # type: ignore[no-any-return]


# Debian (integration) -------------------------------------------------------------------


@pytest.fixture(scope="session")
def deb_cache() -> Path:
    """A cache that outlives the run, so reruns download nothing; apt's lists refreshed if
    they were cleared (a Docker-style image drops them)."""
    cache = Path(os.environ.get("KONBIT_DEB_CACHE") or "/var/tmp/konbit-debs")
    cache.mkdir(parents=True, exist_ok=True)
    policy = subprocess.run(
        ["apt-cache", "policy", "wordpress", "mediawiki", "dokuwiki"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    if "Candidate: (none)" in policy or "Candidate:" not in policy:
        subprocess.run(["apt-get", "update", "-q"], check=True, capture_output=True)
    return cache


@pytest.fixture(scope="session")
def debian_builds(
    deb_cache: Path, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], tuple[Built, Built]]:
    """Each app built twice (in two stores), once per session."""
    done: dict[str, tuple[Built, Built]] = {}

    def get(package: str) -> tuple[Built, Built]:
        if package not in done:
            first = build(
                DebianSource(package),  # type: ignore[arg-type]
                tmp_path_factory.mktemp("store"),
                deb_cache=deb_cache,
            )
            second = build(
                DebianSource(package),  # type: ignore[arg-type]
                tmp_path_factory.mktemp("store"),
                deb_cache=deb_cache,
            )
            done[package] = (first, second)
        return done[package]

    return get


@pytest.mark.integration
def test_debian_wordpress(debian_builds: Callable[[str], tuple[Built, Built]]) -> None:
    built, again = debian_builds("wordpress")
    assert (built.app, built.version) == ("wordpress", "6.1.9")
    assert built.source_text.startswith("Debian package wordpress 6.1.9+dfsg")
    assert again.sha256 == built.sha256  # deterministic
    _assert_clean(built)
    members = _members(built)
    assert "require (static function" in _read(built, "wp-config.php")
    assert "DOCUMENT_ROOT" in _read(built, "wp-config.php")
    assert ".htaccess" not in members
    assert members["wp-content"].isdir()
    assert members["wp-content/themes"].isdir() and members["wp-content/plugins"].isdir()
    assert members["wp-content/themes/twentytwentythree/style.css"].isfile()
    assert members["wp-content/plugins/akismet/akismet.php"].isfile()
    assert not any(n.startswith("wp-content/uploads") for n in members)
    # the links Debian makes into other packages are real files now
    for name in (
        "wp-includes/ID3/getid3.php",
        "wp-includes/js/underscore.min.js",
        "wp-includes/js/crop/cropper.js",
        "wp-includes/certificates/ca-bundle.crt",
    ):
        assert members[name].isfile(), name
    assert _read(built, "wp-includes/certificates/ca-bundle.crt").count("BEGIN CERTIFICATE") > 100
    assert _manifest(built) == {
        "app": "wordpress",
        "version": "6.1.9",
        "source": built.source_text,
        "site_own": ["wp-config.php", "wp-content", ".htaccess"],
        "site_dirs": ["wp-content", "wp-content/uploads"],
    }


@pytest.mark.integration
def test_debian_mediawiki(debian_builds: Callable[[str], tuple[Built, Built]]) -> None:
    built, again = debian_builds("mediawiki")
    assert (built.app, built.version) == ("mediawiki", "1.39.17")
    assert built.source_text.startswith("Debian package mediawiki 1:1.39.17-")
    assert again.sha256 == built.sha256
    _assert_clean(built)
    members = _members(built)
    assert "/LocalSettings.php" in _read(built, "LocalSettings.php")
    settings = _read(built, "includes/PlatformSettings.php")
    assert "$wgCacheDirectory = false;" in settings and "/images" in settings
    assert "/var/" not in settings
    for name in ("images", "cache", "config"):
        assert name not in members
    assert members["extensions"].isdir()  # Debian's link to /var/lib/mediawiki/extensions
    assert members["extensions/Cite"].issym()
    assert members["extensions/Cite"].linkname == "../extensions-core/Cite"
    assert members["includes/Setup.php"].isfile()  # from mediawiki-classes
    assert _manifest(built)["site_own"] == ["LocalSettings.php", "images", "cache"]
    assert _manifest(built)["site_dirs"] == ["images"]


@pytest.mark.integration
def test_debian_dokuwiki(debian_builds: Callable[[str], tuple[Built, Built]]) -> None:
    built, again = debian_builds("dokuwiki")
    # Debian's 2022-07-31a with upstream's b hotfix: VERSION says so, and detect reads it
    assert (built.app, built.version) == ("dokuwiki", "2022-07-31b")
    assert detect(lambda p: _read(built, p) if p == "VERSION" else None) == Detected(
        "dokuwiki", built.version
    )
    assert built.source_text.startswith("Debian package dokuwiki 0.0.20220731.a-")
    assert again.sha256 == built.sha256
    _assert_clean(built)
    members = _members(built)
    preload = _read(built, "inc/preload.php")
    assert "DOCUMENT_ROOT" in preload and "/etc/" not in preload
    # Upstream's conf/ (the defaults) and data/ (a new wiki's skeleton), from /etc and
    # /var/lib; no wiki's own settings, no web installer, no testing plugin.
    assert "$conf['savedir']     = './data';" in _read(built, "conf/dokuwiki.php")
    for name in ("conf/mime.conf", "conf/plugins.required.php", "data/pages/wiki/syntax.txt"):
        assert members[name].isfile(), name
    for name in ("conf/users.auth.php", "conf/acl.auth.php", "install.php", ".htaccess"):
        assert name not in members, name
    assert not any(n.startswith("lib/plugins/testing") for n in members)
    assert members["lib/tpl/dokuwiki/main.php"].isfile()  # Debian's link to /var/lib
    assert members["lib/plugins/authplain/auth.php"].isfile()
    # Other packages' files the code named by absolute paths: copies, and paths to them.
    for name in (
        "vendor/debian/javascript/jquery/jquery.min.js",
        "vendor/debian/javascript/jquery-ui/ui/i18n/datepicker-de.js",
        "vendor/debian/php/phpseclib/Crypt/AES.php",
        "vendor/debian/php/simplepie/library/SimplePie.php",
        "vendor/debian/php-geshi/geshi.php",
    ):
        assert members[name].isfile() or members[name].issym(), name
    assert "__DIR__ . '/../../vendor/debian/javascript/jquery/jquery.min.js'" in _read(
        built, "lib/exe/jquery.php"
    )
    with tarfile.open(built.path) as tar:
        for m in tar.getmembers():
            if m.isfile() and m.name.endswith(".php"):
                text = tar.extractfile(m).read().decode("utf-8", "replace")  # type: ignore[union-attr]
                for path in ("'/usr/share/", "'/etc/dokuwiki", "'/var/lib/dokuwiki"):
                    assert path not in text, (m.name, path)
    assert _manifest(built)["site_dirs"] == [".dokuwiki", ".dokuwiki/conf", ".dokuwiki/data"]


# Debian-style links, no network ---------------------------------------------------------


def test_dokuwiki_absolute_paths_become_the_copies(tmp_path: Path) -> None:
    root = _tree(
        tmp_path / "app",
        {
            "lib/exe/js.php": "<?php\n$f = ['/usr/share/javascript/ui/i18n/dp-'.$lang.'.js',\n"
            "    '/usr/share/javascript/jq/jq.js'];\n",
            "vendor/composer/files.php": "<?php\n"
            "return [$vendorDir . '/usr/share/php/x/boot.php'];\n",
            "vendor/debian/javascript/ui/i18n/dp-de.js": "",
            "vendor/debian/javascript/jq/jq.js": "",
            "vendor/debian/php/x/boot.php": "<?php\n",
        },
    )
    _debian_dokuwiki_paths(root)
    assert (root / "lib/exe/js.php").read_text() == (
        "<?php\n$f = [__DIR__ . '/../../vendor/debian/javascript/ui/i18n/dp-'.$lang.'.js',\n"
        "    __DIR__ . '/../../vendor/debian/javascript/jq/jq.js'];\n"
    )
    assert (
        "return [__DIR__ . '/../../vendor/debian/php/x/boot.php'];"
        in (root / "vendor/composer/files.php").read_text()
    )


@pytest.mark.parametrize(
    ("php", "named"),
    [
        ("<?php include '/usr/share/php/gone/a.php';", "/usr/share/php/gone/a.php"),
        ("<?php define('C', '/etc/dokuwiki/');", "'/etc/dokuwiki/"),
        ('<?php $d = "/var/lib/dokuwiki/data";', '"/var/lib/dokuwiki/'),
    ],
)
def test_dokuwiki_paths_out_of_the_platform_are_named(tmp_path: Path, php: str, named: str) -> None:
    root = _tree(tmp_path / "app", {"inc/x.php": php})
    with pytest.raises(BuildError, match=re.escape(f"inc/x.php: {named}")):
        _debian_dokuwiki_paths(root)


def test_links_into_other_packages_become_copies(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    app = staging / "usr/share/app"
    (app / "lib").mkdir(parents=True)
    (staging / "usr/share/php/dep").mkdir(parents=True)
    (staging / "usr/share/php/dep/a.php").write_text("<?php // a")
    (staging / "usr/share/php/dep/b.php").symlink_to("a.php")
    (staging / "var/lib/app/ext").mkdir(parents=True)
    (staging / "var/lib/app/ext/one").symlink_to("/usr/share/app/lib")
    (app / "lib/x.php").write_text("<?php // x")
    (app / "dep").symlink_to("../php/dep")  # a directory in another package
    (app / "b.php").symlink_to("../php/dep/b.php")  # a chain
    (app / "ext").symlink_to("/var/lib/app/ext")  # a directory of links back into the app
    (app / "y.php").symlink_to("lib/x.php")  # inside: stays a link
    _inline_links(app, staging)
    assert (app / "dep").is_dir() and not (app / "dep").is_symlink()
    assert not (app / "dep/b.php").is_symlink() and (app / "dep/b.php").read_text() == "<?php // a"
    assert not (app / "b.php").is_symlink()
    assert (app / "ext").is_dir() and not (app / "ext").is_symlink()
    assert os.readlink(app / "ext/one") == "../lib"
    assert os.readlink(app / "y.php") == "lib/x.php"


def test_links_out_of_the_packages_are_named(tmp_path: Path) -> None:
    staging = tmp_path / "staging"
    app = staging / "usr/share/app"
    app.mkdir(parents=True)
    (app / "ca.crt").symlink_to("/etc/ssl/certs/ca-certificates.crt")
    (app / "up").symlink_to("../../../..")
    with pytest.raises(BuildError, match=r"ca\.crt -> /etc/ssl.*DEBIAN_PACKAGES"):
        _inline_links(app, staging)


# Archives -------------------------------------------------------------------------------


def _tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return root


def _targz(tmp_path: Path, top: Path, name: str = "app.tar.gz") -> ArchiveSource:
    archive = tmp_path / name
    mode = "w:xz" if name.endswith(".xz") else "w:gz"
    with tarfile.open(archive, mode) as tar:
        tar.add(top, arcname=top.name)
    return ArchiveSource(archive, _sha256(archive))


def _fake_wordpress(tmp_path: Path) -> Path:
    return _tree(
        tmp_path / "src" / "wordpress",
        {
            "index.php": "<?php\ndefine( 'WP_USE_THEMES', true );\n"
            "require __DIR__ . '/wp-blog-header.php';\n",
            "wp-includes/version.php": WP_VERSION_PHP,
            "wp-config.php": "<?php define('DB_PASSWORD', 'secret');\n",
            "wp-content/uploads/2024/01/photo.jpg": "jpeg",
        },
    )


def test_archive_wordpress(tmp_path: Path) -> None:
    top = _fake_wordpress(tmp_path)
    os.chmod(top / "index.php", 0o4755)  # setuid is dropped
    (top / "wp-includes/latest.php").symlink_to("version.php")  # relative, inside: kept
    source = _targz(tmp_path, top)
    built = build(source, tmp_path / "store")
    assert (built.app, built.version) == ("wordpress", "6.4.3")
    assert built.source_text == f"archive app.tar.gz (sha256 {source.sha256})"
    _assert_clean(built)
    members = _members(built)
    assert set(n for n in members if "/" not in n) == {
        MANIFEST,
        "index.php",
        "wp-config.php",
        "wp-content",
        "wp-includes",
    }  # the top-level directory is stripped
    assert members["index.php"].mode == 0o755
    assert members["wp-includes/latest.php"].linkname == "version.php"
    config = _read(built, "wp-config.php")
    assert "secret" not in config and "DOCUMENT_ROOT" in config
    assert members["wp-content/themes"].isdir() and members["wp-content/plugins"].isdir()
    assert not any(n.startswith("wp-content/uploads") for n in members)
    assert members["wp-includes/version.php"].mtime == int(
        (top / "wp-includes/version.php").stat().st_mtime
    )
    assert _manifest(built)["site_dirs"] == ["wp-content", "wp-content/uploads"]
    time.sleep(1.1)  # a rebuild at another time, from another store: the same bytes
    again = build(source, tmp_path / "store2")
    assert again.sha256 == built.sha256


def test_archive_zip_and_xz(tmp_path: Path) -> None:
    top = _fake_wordpress(tmp_path)
    xz = build(_targz(tmp_path, top, "wp.tar.xz"), tmp_path / "store")
    archive = tmp_path / "wp.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for path in sorted(top.rglob("*")):
            zf.write(path, path.relative_to(top.parent).as_posix())
    zipped = build(ArchiveSource(archive, _sha256(archive)), tmp_path / "store")
    assert (xz.version, zipped.version) == ("6.4.3", "6.4.3")
    assert "wp-includes/version.php" in _members(zipped)
    _assert_clean(zipped)


def test_archive_mediawiki(tmp_path: Path) -> None:
    top = _tree(
        tmp_path / "src" / "mediawiki-1.41.0",
        {
            "index.php": "<?php\n",
            "includes/Defines.php": MW_DEFINES_PHP,
            "images/README": "uploads",
            "cache/.htaccess": "Deny from all",
        },
    )
    built = build(_targz(tmp_path, top), tmp_path / "store")
    assert (built.app, built.version) == ("mediawiki", "1.41.0")
    members = _members(built)
    assert "LocalSettings.php" in members and "includes/PlatformSettings.php" in members
    assert not any(n.split("/")[0] in ("images", "cache") for n in members)
    assert _manifest(built)["site_own"] == ["LocalSettings.php", "images", "cache"]


def test_archive_other_app_is_just_packed(tmp_path: Path) -> None:
    drupal = "<?php\nclass Drupal {\n  const VERSION = '10.2.3';\n}\n"
    top = _tree(tmp_path / "src" / "drupal", {"core/lib/Drupal.php": drupal, "index.php": ""})
    built = build(_targz(tmp_path, top), tmp_path / "store")
    assert (built.app, built.version) == ("drupal", "10.2.3")
    names = {MANIFEST, "core", "core/lib", "core/lib/Drupal.php", "index.php"}
    assert set(_members(built)) == names
    assert _manifest(built)["site_own"] == []


def test_archive_dokuwiki(tmp_path: Path) -> None:
    """Upstream's layout: the same rules as Debian's build (its own preload, no web
    installer, no wiki's own settings in the platform's conf/)."""
    top = _tree(
        tmp_path / "src" / "dokuwiki",
        {
            "VERSION": '2024-02-06b "Kaos"\n',
            "doku.php": "<?php\n",
            "install.php": "<?php // the web installer\n",
            "inc/init.php": "<?php\n",
            "inc/preload.php.dist": "<?php\n",
            "conf/dokuwiki.php": "<?php\n$conf['savedir'] = './data';\n",
            "conf/local.php": "<?php\n$conf['title'] = 'Somebody else';\n",
            "conf/users.auth.php": "admin:$2y$10$secret:Admin:a@b.c:admin,user\n",
            "conf/acl.auth.php": "* @ALL 8\n",
            "data/pages/wiki/welcome.txt": "Welcome",
            "data/cache/_dummy": "",
        },
    )
    built = build(_targz(tmp_path, top), tmp_path / "store")
    assert (built.app, built.version) == ("dokuwiki", "2024-02-06b")
    _assert_clean(built)
    members = _members(built)
    for name in ("install.php", "conf/local.php", "conf/users.auth.php", "conf/acl.auth.php"):
        assert name not in members, name
    assert members["data/pages/wiki/welcome.txt"].isfile()  # the skeleton of a new wiki
    preload = _read(built, "inc/preload.php")
    assert "DOCUMENT_ROOT" in preload and "/.dokuwiki/conf/" in preload
    assert "dirname(__DIR__) . '/conf/'" in preload  # the defaults: the platform's
    assert "savedir" in _read(built, "conf/konbit.protected.php")
    assert members["inc/preload.php"].mtime == members["VERSION"].mtime
    assert _manifest(built)["site_own"] == [
        ".dokuwiki", "conf", "data", "inc", "bin", "vendor", ".htaccess",
    ]  # fmt: skip
    assert _manifest(built)["site_dirs"] == [".dokuwiki", ".dokuwiki/conf", ".dokuwiki/data"]


def test_archive_dokuwiki_without_its_defaults(tmp_path: Path) -> None:
    top = _tree(tmp_path / "src" / "dokuwiki", {"VERSION": "2024-02-06b\n", "doku.php": ""})
    with pytest.raises(BuildError, match=r"conf/dokuwiki\.php is missing"):
        build(_targz(tmp_path, top), tmp_path / "store")


def test_wrong_sha256(tmp_path: Path) -> None:
    source = _targz(tmp_path, _fake_wordpress(tmp_path))
    wrong = "0" * 64
    with pytest.raises(BuildError, match=f"{source.sha256}.*{wrong}"):
        build(ArchiveSource(source.path, wrong), tmp_path / "store")
    assert not list((tmp_path / "store").glob("*.tar.gz"))


def _hostile(tmp_path: Path, *members: tuple[tarfile.TarInfo, bytes | None]) -> ArchiveSource:
    archive = tmp_path / "hostile.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        version = tarfile.TarInfo("wp-includes/version.php")
        version.size = len(WP_VERSION_PHP)
        tar.addfile(version, io.BytesIO(WP_VERSION_PHP.encode()))
        for info, data in members:
            if data is not None:
                info.size = len(data)
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    return ArchiveSource(archive, _sha256(archive))


def _file(name: str) -> tuple[tarfile.TarInfo, bytes]:
    return tarfile.TarInfo(name), b"evil"


def _link(name: str, target: str, kind: bytes = tarfile.SYMTYPE) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = target
    return info, None


def _special(name: str, kind: bytes) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    return info, None


@pytest.mark.parametrize(
    ("members", "message"),
    [
        ([_file("../evil")], "unsafe member"),
        ([_file("wp-includes/../../evil")], "unsafe member"),
        ([_file("/etc/cron.d/evil")], "unsafe member"),
        ([_link("passwd", "/etc/passwd")], "outside"),
        ([_link("etc", "/etc"), _file("etc/cron.d/evil")], "outside"),
        ([_link("up", "../..")], "outside"),
        (
            [_link("x", "."), _link("y", "x/a/../..")],
            "outside the application or nowhere",
        ),  # a chain
        ([_link("d", "wp-includes"), _file("d/evil.php")], "through a link"),
        ([_link("hard", "/etc/passwd", tarfile.LNKTYPE)], "unsafe member"),
        ([_special("null", tarfile.CHRTYPE)], "special file"),
        ([_special("fifo", tarfile.FIFOTYPE)], "special file"),
    ],
)
def test_hostile_tar(
    tmp_path: Path, members: list[tuple[tarfile.TarInfo, bytes | None]], message: str
) -> None:
    source = _hostile(tmp_path, *members)
    with pytest.raises(BuildError, match=message):
        build(source, tmp_path / "store")
    assert not (tmp_path / "evil").exists()
    assert not list((tmp_path / "store").glob("*.tar.gz"))


def test_hostile_zip(tmp_path: Path) -> None:
    for name in ("../evil.php", "/evil.php"):
        archive = tmp_path / "hostile.zip"
        with zipfile.ZipFile(archive, "w") as zf:
            zf.writestr("wp-includes/version.php", WP_VERSION_PHP)
            zf.writestr(name, "<?php")
        with pytest.raises(BuildError, match="unsafe member"):
            build(ArchiveSource(archive, _sha256(archive)), tmp_path / "store")
    archive = tmp_path / "link.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("wp-includes/version.php", WP_VERSION_PHP)
        info = zipfile.ZipInfo("passwd")
        info.external_attr = (0o120777 << 16) | 0x20
        zf.writestr(info, "/etc/passwd")
    with pytest.raises(BuildError, match="outside"):
        build(ArchiveSource(archive, _sha256(archive)), tmp_path / "store")


def test_no_known_app(tmp_path: Path) -> None:
    top = _tree(tmp_path / "src" / "site", {"index.php": "<?php echo 1;", "README": "hi"})
    with pytest.raises(BuildError, match=r"no application.*wp-includes/version\.php"):
        build(_targz(tmp_path, top), tmp_path / "store")


def test_not_an_archive(tmp_path: Path) -> None:
    path = tmp_path / "app.tar.gz"
    path.write_bytes(b"this is not an archive")
    with pytest.raises(BuildError, match="cannot read"):
        build(ArchiveSource(path, _sha256(path)), tmp_path / "store")


def test_missing_archive(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="does not exist"):
        build(ArchiveSource(tmp_path / "nope.tar.gz", "0" * 64), tmp_path / "store")


def test_store_holds_only_artifacts(tmp_path: Path) -> None:
    build(_targz(tmp_path, _fake_wordpress(tmp_path)), tmp_path / "store")
    leftovers = [p.name for p in (tmp_path / "store").iterdir()]
    assert len(leftovers) == 1 and leftovers[0].endswith(".tar.gz")
    shutil.rmtree(tmp_path / "store")
