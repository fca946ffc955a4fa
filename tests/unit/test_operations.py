"""The operations plugins offer the panel's tasks: the argv and SQL they hand back for
awkward names, and their scripts run here on local files (no test host needed)."""

from __future__ import annotations

import gzip
import io
import os
import pwd
import subprocess
import tarfile
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509

from provisioners.api import (
    BackupStore,
    Command,
    CronJobs,
    DatabaseEngine,
    NotOffered,
    Provisioner,
    SiteFiles,
    SiteKeys,
    offered,
)
from provisioners.cron import Cron, CronOperations
from provisioners.databases import MariaDB, PostgreSQL
from provisioners.databases.operations import MariaDBOperations, PostgreSQLOperations
from provisioners.lists import Mailman
from provisioners.web import Nginx, WebHome
from provisioners.web.operations import WebOperations

PLUGINS: list[Provisioner] = [Nginx(), Mailman(), WebHome(), MariaDB(), PostgreSQL()]
ROOT = os.geteuid() == 0


def _local(command: Command, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    """The command as a host would run it, here."""
    data = command.stdin if stdin is None else stdin
    return subprocess.run(list(command.argv), input=data, capture_output=True, check=False)


def _sql(command: Command) -> list[str]:
    assert command.stdin is not None
    return command.stdin.decode().splitlines()


# -- the lookup ----------------------------------------------------------------------------


def test_offered_finds_each_protocol_with_the_plugin_that_owns_it() -> None:
    for protocol in (SiteFiles, SiteKeys, BackupStore):
        assert isinstance(offered(PLUGINS, protocol), WebOperations)
    assert isinstance(offered(PLUGINS, DatabaseEngine, "mariadb"), MariaDBOperations)
    assert isinstance(offered(PLUGINS, DatabaseEngine, "postgresql"), PostgreSQLOperations)
    assert offered(PLUGINS, DatabaseEngine, "postgresql").engine == "postgresql"
    assert isinstance(offered([*PLUGINS, Cron()], CronJobs), CronOperations)


def test_offered_names_what_is_missing() -> None:
    with pytest.raises(
        NotOffered, match=r"no installed plugin offers DatabaseEngine for 'mariadb'"
    ):
        offered([WebHome(), PostgreSQL()], DatabaseEngine, "mariadb")
    with pytest.raises(NotOffered, match=r"offers SiteFiles;"):
        offered([Nginx(), MariaDB()], SiteFiles)  # plugins without (those) operations
    with pytest.raises(NotOffered, match="DatabaseEngine for 'web'"):
        offered(PLUGINS, DatabaseEngine, "web")  # the web plugin offers other operations


# -- databases: names with "_", quoting ----------------------------------------------------

MY = MariaDBOperations()
PG = PostgreSQLOperations()


def test_dump_and_load_take_the_name_as_an_argument() -> None:
    for ops in (MY, PG):
        dump = ops.dump("acme_shop")
        assert dump.argv[:2] == ("sh", "-c") and dump.argv[3:] == (
            "konbit",
            ops.engine,
            "acme_shop",
            "",
        )
        assert "acme_shop" not in dump.argv[2] and dump.stdin is None
        kept = ops.dump_and_keep("acme_shop", "/var/lib/x y/acme_shop.sql.gz")
        assert kept.argv[2] == dump.argv[2]
        assert kept.argv[-1] == "/var/lib/x y/acme_shop.sql.gz"
    assert MY.load("acme_shop").argv[3:] == ("konbit", "mariadb", "acme_shop", "", "")


def test_postgresql_load_restores_as_the_quoted_owner_role() -> None:
    argv = PG.load("acme_shop").argv
    assert argv[3:6] == ("konbit", "postgresql", "acme_shop")
    assert argv[6] == 'SET ROLE "ACME_SHOP";'
    assert argv[7] == (
        'DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION "ACME_SHOP";'
    )
    # A double quote (never valid at the API, still quoted here) is doubled, not closing.
    assert PG.load('a"b').argv[6] == 'SET ROLE "A""B";'


def test_drop_quotes_each_name_and_drops_the_postgresql_owner_roles() -> None:
    my = MY.drop(["acme_shop", "a`b"], ["acme_u", "o'neil"])
    assert my.argv == ("mariadb", "--batch")
    assert _sql(my) == [
        "DROP DATABASE IF EXISTS `acme_shop`;",  # an identifier: "_" is no wildcard here
        "DROP DATABASE IF EXISTS `a``b`;",
        "DROP USER IF EXISTS 'acme_u'@'%';",
        "DROP USER IF EXISTS 'o\\'neil'@'%';",
    ]
    pg = PG.drop(["acme_shop"], ["acme_u"])
    assert pg.argv[:2] == ("sh", "-c") and "psql" in pg.argv[2]
    assert _sql(pg) == [
        'DROP DATABASE IF EXISTS "acme_shop" WITH (FORCE);',
        'DROP ROLE IF EXISTS "acme_u";',
        'DROP ROLE IF EXISTS "ACME_SHOP";',
    ]


def test_postgresql_freeze_locks_roles_and_ends_their_sessions() -> None:
    lock = PG.freeze(["acme_u", "o'neil"], lock=True)
    assert _sql(lock) == [
        'ALTER ROLE "acme_u" NOLOGIN;',
        'ALTER ROLE "o\'neil" NOLOGIN;',
        "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
        "WHERE usename IN ('acme_u', 'o''neil');",
    ]
    assert _sql(PG.freeze(["acme_u"], lock=False)) == ['ALTER ROLE "acme_u" LOGIN;']


def test_mariadb_unfreeze_unlocks_accounts() -> None:
    unlock = MY.freeze(["acme_u"], lock=False)
    assert unlock.argv == ("mariadb", "--batch", "--skip-column-names")
    assert _sql(unlock) == ["ALTER USER IF EXISTS 'acme_u'@'%' ACCOUNT UNLOCK;"]


def _fake_mariadb(tmp_path: Path, ids: str, kill_fails: bool = False) -> Path:
    """A ``mariadb`` on PATH that logs each run's stdin and answers ``ids`` to a query."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "mariadb"
    fake.write_text(
        "#!/bin/sh\n"
        f'log="{tmp_path}/runs"\n'
        'echo "== $*" >> "$log"; cat >> "$log"\n'
        'case "$*" in *--force*) ' + ("exit 1" if kill_fails else "exit 0") + ";; esac\n"
        f"printf '%s' '{ids}'\n"
    )
    fake.chmod(0o755)
    return bin_dir


def _with_path(command: Command, bin_dir: Path) -> subprocess.CompletedProcess[bytes]:
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    return subprocess.run(
        list(command.argv), input=command.stdin, capture_output=True, check=False, env=env
    )


def test_mariadb_freeze_locks_accounts_then_kills_their_sessions(tmp_path: Path) -> None:
    lock = MY.freeze(["acme_u", "o'neil"], lock=True)
    assert _sql(lock) == [
        "ALTER USER IF EXISTS 'acme_u'@'%' ACCOUNT LOCK;",
        "ALTER USER IF EXISTS 'o\\'neil'@'%' ACCOUNT LOCK;",
        "SELECT id FROM information_schema.processlist WHERE user IN ('acme_u', 'o\\'neil');",
    ]
    done = _with_path(lock, _fake_mariadb(tmp_path, "12\n7\nNULL\n", kill_fails=True))
    assert done.returncode == 0, done.stderr  # a session gone meanwhile is no error
    runs = (tmp_path / "runs").read_text().split("== ")[1:]
    assert runs[0].startswith("--batch --skip-column-names\n") and "ACCOUNT LOCK" in runs[0]
    assert runs[1] == "--batch --force\nKILL CONNECTION 12;\nKILL CONNECTION 7;\n"


def test_mariadb_freeze_without_sessions_kills_nothing(tmp_path: Path) -> None:
    done = _with_path(MY.freeze(["acme_u"], lock=True), _fake_mariadb(tmp_path, ""))
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "runs").read_text().count("== ") == 1


def test_mariadb_freeze_fails_when_the_lock_fails(tmp_path: Path) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mariadb").write_text("#!/bin/sh\necho 'ERROR 1045' >&2\nexit 1\n")
    (bin_dir / "mariadb").chmod(0o755)
    done = _with_path(MY.freeze(["acme_u"], lock=True), bin_dir)
    assert done.returncode != 0 and b"ERROR 1045" in done.stderr


def test_archive_passes_postgresql_its_bin_directory_last() -> None:
    assert MY.archive("acme_shop", "acme").argv[3:] == (
        "konbit",
        "mariadb",
        "acme_shop",
        "/var/lib/konbit/archive/databases/acme",
        "",
    )
    argv = list(PG.archive("acme_shop", "acme").argv)
    assert argv[5:] == ["postgresql", "acme_shop", "/var/lib/konbit/archive/databases/acme"]
    argv[4] = 'printf "%s|" "$@"'  # the archive script's place: show what it gets
    out = subprocess.run(argv, capture_output=True, check=True, text=True).stdout
    engine, name, where, pg_bin, _ = out.split("|")
    assert (engine, name, where) == ("postgresql", "acme_shop", argv[7])
    assert pg_bin == "" or pg_bin.startswith("/usr/lib/postgresql/")


def test_kept_dumps_become_archives_or_go(tmp_path: Path) -> None:
    paths = [str(tmp_path / "a b" / f"acme_{n}-mariadb-T.sql.gz") for n in ("x", "y")]
    assert MY.kept_path("acme", "acme_x", "T") == (
        "/var/lib/konbit/archive/databases/acme/acme_x-mariadb-T.sql.gz"
    )
    (tmp_path / "a b").mkdir()
    for p in paths:
        Path(f"{p}.partial").write_bytes(b"dump")
    assert _local(MY.discard_dumps(paths[1:])).returncode == 0
    assert _local(MY.keep_dumps(paths[:1])).returncode == 0
    assert sorted(os.listdir(tmp_path / "a b")) == ["acme_x-mariadb-T.sql.gz"]


# -- web: document roots, the store, keys ---------------------------------------------------

WEB = WebOperations()


def test_paths_of_the_web_plugin() -> None:
    assert WEB.document_root("acme", "www.acme.test") == "/var/www/konbit/acme/www.acme.test"
    assert WEB.archive_path("acme", "x-site3-migrated") == (
        "/var/lib/konbit/archive/sites/acme/x-site3-migrated"
    )
    assert WEB.key_dir(3) == "/etc/konbit/private/site-3"
    assert WEB.has_keys(3).argv == ("test", "-d", "/etc/konbit/private/site-3")
    assert WEB.keys_out(3).argv == ("tar", "-C", "/etc/konbit/private", "-czf", "-", "site-3")
    assert WEB.remove_keys(3).argv == ("rm", "-rf", "--", "/etc/konbit/private/site-3")
    assert WEB.remove_key(3, "acme-1.key").argv == (
        "rm",
        "-f",
        "--",
        "/etc/konbit/private/site-3/acme-1.key",
    )


def _tree(root: Path, files: dict[str, bytes]) -> None:
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(content)


def test_tar_out_of_a_root_with_spaces(tmp_path: Path) -> None:
    root = tmp_path / "my site" / "www"
    _tree(root, {"index.html": b"hi", "sub dir/a b.txt": b"x"})
    for gz in (True, False):
        out = _local(WEB.tar_out(str(root), gz=gz))
        assert out.returncode == 0, out.stderr
        with tarfile.open(fileobj=io.BytesIO(out.stdout), mode="r:gz" if gz else "r:") as tar:
            assert {"./index.html", "./sub dir/a b.txt"} <= set(tar.getnames())


@pytest.mark.skipif(not ROOT, reason="put_files chowns to the account's user")
def test_put_files_swaps_in_a_tree_and_archives_the_old_one(tmp_path: Path) -> None:
    src, root = tmp_path / "src", tmp_path / "a b" / "www"
    _tree(src, {"new.html": b"new"})
    _tree(root, {"old.html": b"old"})
    stream = _local(WEB.tar_out(str(src), gz=True)).stdout
    archive = str(tmp_path / "archive dir" / "acme" / "www-before")
    done = _local(WEB.put_files(str(root), "www-data", "t1", archive=archive, gz=True), stream)
    assert done.returncode == 0, done.stderr
    assert sorted(os.listdir(root)) == ["new.html"]
    assert (root / "new.html").stat().st_uid == pwd.getpwnam("www-data").pw_uid
    assert sorted(os.listdir(archive)) == ["old.html"]
    assert not (tmp_path / "a b" / "www.konbit-t1").exists()
    # Without an archive the old tree goes; an unknown user is refused before anything.
    plain = _local(WEB.tar_out(str(src), gz=False)).stdout
    put = WEB.put_files(str(root), "www-data", "t2", archive=None, gz=False)
    assert _local(put, plain).returncode == 0
    refused = _local(WEB.put_files(str(root), "no-such-user", "t3", archive=None, gz=False), b"")
    assert refused.returncode != 0 and b"no unix user no-such-user" in refused.stderr


def test_store_size_read_remove_on_paths_with_spaces(tmp_path: Path) -> None:
    path = str(tmp_path / "backups dir" / "acme" / "files.tar.gz")
    assert _local(WEB.store(path), b"12345").returncode == 0
    assert Path(path).read_bytes() == b"12345"
    assert Path(path).stat().st_mode & 0o777 == 0o600
    assert not Path(f"{path}.partial").exists()
    assert int(_local(WEB.size(path)).stdout) == 5
    assert _local(WEB.read(path)).stdout == b"12345"
    assert _local(WEB.remove(str(tmp_path / "backups dir"))).returncode == 0
    assert not (tmp_path / "backups dir").exists()


def test_remove_copy_takes_the_staging_copies_too(tmp_path: Path) -> None:
    _tree(tmp_path, {"a b/x": b"", "a b.konbit-migrate-4/y": b"", "a bc/z": b""})
    assert _local(WEB.remove_copy(str(tmp_path / "a b"))).returncode == 0
    assert os.listdir(tmp_path) == ["a bc"]


def test_archive_moves_a_root_aside_with_the_time(tmp_path: Path) -> None:
    _tree(tmp_path, {"www/x": b""})
    dest = tmp_path / "arch ive" / "acme" / "www-site3-migrated"
    assert _local(WEB.archive(str(tmp_path / "www"), str(dest))).returncode == 0
    (moved,) = os.listdir(dest.parent)
    assert moved.startswith("www-site3-migrated-") and moved.endswith("Z")
    # Nothing there any more: nothing to do, no error.
    assert _local(WEB.archive(str(tmp_path / "www"), str(dest))).returncode == 0


def _rewrite(root: Path, renames: Sequence[tuple[str, str]]) -> subprocess.CompletedProcess[bytes]:
    command = WEB.rewrite_names(str(root), "acme", renames)
    assert command.argv[:4] == ("runuser", "-u", "acme", "--")
    return _local(Command(command.argv[4:]))  # as this user: the script is what is tested


def test_rewrite_names_changes_whole_names_only(tmp_path: Path) -> None:
    root = tmp_path / "my site"
    _tree(
        root,
        {
            "wp-config.php": b"define('DB_NAME', 'acme_wp'); // acme_wp_old acme_wp.bak\n"
            b"define('DB_HOST', 'db1.test');\n",
            "notes.txt": b"acme_wp\n",
        },
    )
    got = _rewrite(root, [("acme_wp", "acme_wp2"), ("db1.test", "db2.test")])
    assert got.returncode == 0, got.stderr
    assert got.stdout.decode().split() == ["/wp-config.php"]
    assert (root / "wp-config.php").read_bytes() == (
        b"define('DB_NAME', 'acme_wp2'); // acme_wp_old acme_wp.bak\n"
        b"define('DB_HOST', 'db2.test');\n"
    )
    assert (root / "notes.txt").read_bytes() == b"acme_wp\n"  # not an application's config


def test_acme_key_csr_and_challenge(tmp_path: Path) -> None:
    made = WEB.new_key_and_csr(7, "acme-1.key", ["www.acme.test", "acme.test"])
    assert made.argv[3:] == (
        "konbit",
        "/etc/konbit/private/site-7",
        "acme-1.key",
        "www.acme.test",
        "acme.test",
    )
    local = Command((*made.argv[:4], str(tmp_path / "keys"), *made.argv[5:]))
    out = _local(local)
    assert out.returncode == 0, out.stderr
    csr = x509.load_pem_x509_csr(out.stdout)
    san = csr.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["www.acme.test", "acme.test"]
    assert (tmp_path / "keys" / "acme-1.key").stat().st_mode & 0o777 == 0o600

    written = WEB.write_challenge("tok_en-1234567890", b"tok_en.thumb")
    assert written.stdin == b"tok_en.thumb"
    assert written.argv[3:] == ("konbit", "/var/lib/konbit/acme-challenge", "tok_en-1234567890")
    assert WEB.remove_challenges(["t1", "t2"]).argv == (
        "rm",
        "-f",
        "--",
        "/var/lib/konbit/acme-challenge/t1",
        "/var/lib/konbit/acme-challenge/t2",
    )


def test_the_dump_script_gzips_what_it_sends(tmp_path: Path) -> None:
    """The dump through a fake ``mariadb-dump``: gzip'd out, and the kept copy the same."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "mariadb-dump").write_text('#!/bin/sh\necho "-- dump of $*"\n')
    (bin_dir / "mariadb-dump").chmod(0o755)
    keep = tmp_path / "kept dir" / "acme" / "acme_shop.sql.gz"
    command = MY.dump_and_keep("acme_shop", str(keep))
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    argv = list(command.argv)  # the host's archive root is made too: here, a temporary one
    argv[2] = argv[2].replace("/var/lib/konbit/archive", str(tmp_path))
    out = subprocess.run(argv, capture_output=True, check=False, env=env)
    assert out.returncode == 0, out.stderr
    text = gzip.decompress(out.stdout).decode()
    assert text.startswith("-- dump of --single-transaction") and text.endswith("-- acme_shop\n")
    assert Path(f"{keep}.partial").read_bytes() == out.stdout
