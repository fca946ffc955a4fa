"""The worker side of lifecycle tasks: backup, restore, clone, migrate.

Every byte goes host → panel → host (``panel.tasks.streams.pipe``).  A task writes its
progress and log to its row as it goes; the API shows them.  Layout of one backup in the
store (a directory on a backup host)::

    <backup_dir>/<slug>/<domain>-site<id>/<UTC time>-t<task>/
        files.tar.gz                   the document root (numeric owners)
        db-<name>.<engine>.sql.gz      one dump per database
        manifest.json                  what is in it, sizes and SHA-256 of every part
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, selectinload

from panel.accounts.models import Account
from panel.core.db import Database, ObjectStatus, utcnow
from panel.core.objects import mark_pending
from panel.core.settings import Settings
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser, database_grants
from panel.databases.service import serves as serves_engine
from panel.hosts import service as hosts
from panel.hosts.models import Host, HostRole
from panel.hosts.reconcile import Report, connect, reconcile_host
from panel.sites.models import Site
from panel.tasks.models import Backup, Task, TaskKind, TaskStatus
from panel.tasks.streams import pipe, probe
from provisioners.api import Provisioner
from provisioners.databases import _ARCHIVE as _ARCHIVE_DB
from provisioners.databases import ARCHIVE_DIR as DB_ARCHIVE_DIR
from provisioners.databases import (
    mysql_account,
    mysql_ident,
    mysql_str,
    pg_ident,
    pg_owner,
    pg_str,
)
from provisioners.transport import Connection, Target, TransportError
from provisioners.web import _ARCHIVE as ARCHIVE_SCRIPT
from provisioners.web import ARCHIVE_DIR, PRIVATE_ROOT, WWW_ROOT, key_dir

log = logging.getLogger("konbit.tasks")
CLAIM = dt.timedelta(hours=6)  # a task running longer than this is taken as dead
CONVERGE_TIMEOUT = 600.0


class TaskFailed(Exception):
    """The task stops here; the message is shown to the member."""


# ---------------------------------------------------------------- host-side scripts
# Each gets its values as "$1".. (never interpolated); each exits non-zero on any failure.

# "$2": "z" to gzip (the store), "" for a plain stream (host to host).
_TAR_OUT = r"""
set -eu
cd -- "$1"
tar --numeric-owner -c${2}f - .
"""

# Files into a document root: unpacked beside it, owned by the account, then swapped in;
# the tree it replaces is archived ("$4") or, with an empty "$4", removed; "$5": "z" when
# the stream is gzip'd.
_PUT_FILES = r"""
set -eu
root="$1"; user="$2"; tag="$3"; archive="$4"
id -u "$user" >/dev/null 2>&1 || { echo "no unix user $user on this host" >&2; exit 1; }
new="$root.konbit-$tag"
rm -rf -- "$new"
mkdir -p -- "$new"
tar --numeric-owner -x${5}pf - -C "$new"
chown -R -h -- "$user:www-data" "$new"
chmod 2750 "$new"
if [ -e "$root" ] || [ -L "$root" ]; then
    if [ -n "$archive" ]; then
        mkdir -p -- "$(dirname "$archive")"
        chmod 0700 -- "$(dirname "$(dirname "$archive")")"
        mv -T -- "$root" "$archive"
    else
        rm -rf -- "$root"
    fi
fi
mkdir -p -- "$(dirname "$root")"
mv -T -- "$new" "$root"
"""

_STORE = r"""
set -eu
umask 077
mkdir -p -- "$(dirname "$1")"
cat > "$1.partial"
mv -f -- "$1.partial" "$1"
"""

# With "$3", the gzip'd dump is also kept there as "$3.partial" (a move's archive of the
# old copy: its users are locked out, so the stream sent is the last state).
_DUMP = r"""
set -eu
engine="$1"; name="$2"; keep="${3:-}"
cd /
tmp=$(mktemp /var/tmp/konbit-dump.XXXXXX)
trap 'rm -f "$tmp"' EXIT
if [ "$engine" = mariadb ]; then
    mariadb-dump --single-transaction --routines --events --triggers --hex-blob -- "$name" > "$tmp"
else
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    chown postgres "$tmp"
    runuser -u postgres -- "$bin/pg_dump" --no-owner --no-privileges --dbname="$name" -f "$tmp"
fi
if [ -n "$keep" ]; then
    umask 077
    dir=$(dirname "$keep")
    install -d -m 0700 /var/lib/konbit/archive "$(dirname "$dir")" "$dir"
    gzip -c < "$tmp" | tee -- "$keep.partial"
else
    gzip -c < "$tmp"
fi
"""

# A gzip'd dump into an existing database; it replaces what the dump holds (MariaDB dumps
# drop each table first; PostgreSQL's public schema is emptied first, then restored as
# the database's owner role so the account's users keep their rights).
_LOAD = r"""
set -eu
engine="$1"; name="$2"; setrole="$3"; reset="$4"
cd /
tmp=$(mktemp /var/tmp/konbit-load.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
gzip -t "$tmp"
if [ "$engine" = mariadb ]; then
    gunzip -c "$tmp" | mariadb --batch -- "$name"
else
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    chmod 0644 "$tmp"
    { printf '%s\n' "$reset" "$setrole"; gunzip -c "$tmp"; } | \
        runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$name" >/dev/null
fi
"""

# Config files of common applications (WordPress, Joomla, Drupal, MediaWiki, Nextcloud,
# Laravel, Magento, Symfony, phpMyAdmin...) under a document root, at most 5 levels down,
# regular files under 1 MiB: each whole-word old name ("$2", "$4"...) becomes its new one
# ("$3", "$5"...).  Run as the site's unix user, so a symlink or a file it does not own is
# out of reach; a file is replaced by rename, keeping its mode.  Prints what it changed.
_REWRITE = r"""
use strict; use warnings; use File::Find ();
my ($root, %map) = @ARGV;
exit 0 unless %map && -d $root;
my %names = map { $_ => 1 } qw(wp-config.php configuration.php settings.php settings.local.php
    LocalSettings.php config.php config.inc.php local.php env.php .env database.php
    parameters.yml parameters.yaml database.yml config.yml);
my $alt = join "|", map { quotemeta } sort { length($b) <=> length($a) } keys %map;
my $re = qr/(?<![\w.\-])($alt)(?![\w.\-])/;
my $base = ($root =~ tr{/}{});
my $failed = 0;
File::Find::find({ no_chdir => 1, wanted => sub {
    my $path = $File::Find::name;
    my @st = lstat $path or return;
    if (-d _) { $File::Find::prune = 1 if ($path =~ tr{/}{}) - $base >= 5; return }
    return unless -f _ && $st[7] < 1048576;
    my ($name) = $path =~ m{([^/]+)\z};
    return unless $names{$name};
    open(my $in, "<:raw", $path) or return;
    my $text = do { local $/; <$in> };
    close $in;
    (my $new = $text) =~ s/$re/$map{$1}/g;
    return if $new eq $text;
    my $tmp = "$path.konbit-rewrite";
    if (open(my $out, ">:raw", $tmp) and chmod($st[2] & 07777, $tmp)) {
        print $out $new;
        if (close $out and rename $tmp, $path) {
            print substr($path, length $root), "\n";
            return;
        }
    }
    unlink $tmp;
    warn "$path: $!\n";
    $failed = 1;
} }, $root);
exit $failed;
"""
_SIZE = 'du -sb -- "$1" | cut -f1'
_KEEP = 'for f; do mv -f -- "$f.partial" "$f"; done'  # dumps sent, now archived
_UNTAR_KEYS = 'install -d -m 0700 "$1" && tar -xzpf - -C "$1"'
_PSQL = (
    "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); cd / && "
    'runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres'
)


# ---------------------------------------------------------------- bookkeeping


class Job:
    """One running task: its log and progress, written to its row as it goes."""

    def __init__(
        self, db: Database, settings: Settings, task_id: int, plugins: Sequence[Provisioner]
    ):
        self.db = db
        self.settings = settings
        self.task_id = task_id
        self.plugins = plugins
        self.owner = f"task-{task_id}-{secrets.token_hex(4)}"
        self.started = time.monotonic()
        self.span = (0, 100)  # where a part's 0-100 lands in the task's progress

    @contextmanager
    def part(self, low: int, high: int) -> Iterator[None]:
        """Progress said inside runs from ``low`` to ``high`` of the current span."""
        saved = self.span
        a, b = saved
        self.span = (a + (b - a) * low // 100, a + (b - a) * high // 100)
        try:
            yield
        finally:
            self.span = saved

    def say(self, message: str, progress: int | None = None) -> None:
        stamp = f"[{time.monotonic() - self.started:7.1f}s] {message}\n"
        log.info(message, extra={"task_id": self.task_id})
        with self.db.session() as session:
            task = session.get_one(Task, self.task_id)
            task.log = (task.log + stamp)[-100_000:]
            if progress is not None:
                low, high = self.span
                progress = low + (high - low) * min(progress, 100) // 100
                task.progress = max(task.progress, progress)
            task.claimed_until = utcnow() + CLAIM
            session.commit()

    def params(self) -> dict[str, Any]:
        with self.db.session() as session:
            return dict(session.get_one(Task, self.task_id).params)

    def result(self, **values: Any) -> None:
        with self.db.session() as session:
            task = session.get_one(Task, self.task_id)
            task.result = {**task.result, **values}
            session.commit()

    @contextmanager
    def host(self, host_id: int) -> Iterator[Connection]:
        with self.db.session() as session:
            h = session.get_one(Host, host_id)
            target = Target(h.name, h.address, h.ssh_port, h.ssh_user, h.host_key)
        with connect(self.settings, target) as conn:
            yield conn

    @contextmanager
    def hosts(self) -> Iterator[Callable[[int], Connection]]:
        """Connections opened on first use, one per host, all closed on leaving: a loop
        over objects on the same host pays one SSH handshake, not one per object."""
        with ExitStack() as stack:
            opened: dict[int, Connection] = {}

            def get(host_id: int) -> Connection:
                if host_id not in opened:
                    opened[host_id] = stack.enter_context(self.host(host_id))
                return opened[host_id]

            yield get

    def converge(self, host_id: int, what: str) -> Report:
        """Reconcile one host now (waiting for another worker's lease if need be)."""
        deadline = time.monotonic() + CONVERGE_TIMEOUT
        while True:
            report = reconcile_host(self.db, self.settings, host_id, self.plugins, self.owner)
            if report is not None:
                self.say(
                    f"{what}: reconcile {report.result}"
                    + (f" ({report.error})" if report.error else "")
                )
                return report
            if time.monotonic() > deadline:
                raise TaskFailed(
                    f"{what}: another worker held the host for {CONVERGE_TIMEOUT:.0f}s"
                )
            time.sleep(0.5)


def claim(db: Database, task_id: int) -> bool:
    """Take a queued task (or one whose claim ran out); one worker wins."""
    now = utcnow()
    with db.session() as session:
        taken = session.execute(  # an UPDATE: a CursorResult
            update(Task)
            .where(
                Task.id == task_id,
                (Task.status == TaskStatus.queued)
                | ((Task.status == TaskStatus.running) & (Task.claimed_until < now)),
            )
            .values(status=TaskStatus.running, started_at=now, claimed_until=now + CLAIM)
            .execution_options(synchronize_session=False)
        )
        session.commit()
        return bool(cast(CursorResult[Any], taken).rowcount)


def run_task(
    db: Database, settings: Settings, task_id: int, plugins: Sequence[Provisioner]
) -> str | None:
    """Run one task to its end; returns its final status (None: not ours to run)."""
    if not claim(db, task_id):
        return None
    job = Job(db, settings, task_id, plugins)
    with db.session() as session:
        kind = session.get_one(Task, task_id).kind
    runners: dict[str, Callable[[Job], None]] = {
        TaskKind.backup: do_backup,
        TaskKind.restore: do_restore,
        TaskKind.clone: do_clone,
        TaskKind.migrate: do_migrate,
        TaskKind.migrate_database: do_migrate_database,
        TaskKind.migrate_account: do_migrate_account,
        TaskKind.cleanup: do_cleanup,
    }
    status, error = TaskStatus.succeeded, None
    try:
        runners[kind](job)
    except (TaskFailed, TransportError) as exc:
        status, error = TaskStatus.failed, str(exc)
    except Exception as exc:  # a bug: fail the task, keep the traceback in the worker log
        log.exception("task crashed", extra={"task_id": task_id})
        status, error = TaskStatus.failed, f"internal error: {exc!r}"
    if error:
        job.say(f"failed: {error}")
    else:
        job.say("done", 100)
    with db.session() as session:
        task = session.get_one(Task, task_id)
        task.status, task.error = status, (error or None) and error[:2000]
        task.finished_at, task.claimed_until = utcnow(), None
        session.commit()
    return status


# ---------------------------------------------------------------- pieces


def site_root(slug: str, document_root: str) -> str:
    return f"{WWW_ROOT}/{slug}/{document_root}"


def _stamp() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%SZ")


def _site(session: Session, site_id: int) -> tuple[Site, Account]:
    site = session.get(Site, site_id, options=(selectinload(Site.aliases),))
    if site is None:
        raise TaskFailed(f"site {site_id} no longer exists")
    return site, session.get_one(Account, site.account_id)


def site_databases(session: Session, site: Site, names: list[str] | None) -> list[DbModel]:
    """A site's databases: the ones named (``databases`` in the request), else every
    active database of its account (a site has no link to databases of its own)."""
    stmt = select(DbModel).where(
        DbModel.account_id == site.account_id, DbModel.status != ObjectStatus.deleting
    )
    if names is not None:
        stmt = stmt.where(DbModel.name.in_(names))
    return list(session.scalars(stmt.order_by(DbModel.name)))


def dump_argv(engine: str, name: str, keep: str = "") -> list[str]:
    return ["sh", "-c", _DUMP, "konbit", engine, name, keep]


def load_argv(engine: str, name: str) -> list[str]:
    owner = pg_owner(name)
    reset = (
        "DROP SCHEMA IF EXISTS public CASCADE; "
        f"CREATE SCHEMA public AUTHORIZATION {pg_ident(owner)};"
    )
    return ["sh", "-c", _LOAD, "konbit", engine, name, f"SET ROLE {pg_ident(owner)};", reset]


def put_files_argv(root: str, user: str, tag: str, archive: str, gz: bool = True) -> list[str]:
    return ["sh", "-c", _PUT_FILES, "konbit", root, user, tag, archive, "z" if gz else ""]


def tar_argv(root: str, gz: bool) -> list[str]:
    """A document root as a tar stream: gzip'd for the store; plain from host to host,
    where the panel's relay (~80 MB/s) outruns gzip (~20 MB/s, one core of the host)."""
    return ["sh", "-c", _TAR_OUT, "konbit", root, "z" if gz else ""]


def _require_active(db: Database, site_id: int, report: Report, what: str) -> None:
    with db.session() as session:
        site = session.get(Site, site_id)
        status = site.status if site else None
        reason = site.status_reason if site else None
    if report.result not in ("applied", "noop") or status != ObjectStatus.active:
        raise TaskFailed(f"{what}: {reason or report.error or report.result}")


# ---------------------------------------------------------------- backup


def do_backup(job: Job) -> None:
    p = job.params()
    with job.db.session() as session:
        site, account = _site(session, p["site_id"])
        rows = site_databases(session, site, p.get("databases"))
        granted: dict[int, list[str]] = {}
        for db_id, user in session.execute(
            select(database_grants.c.database_id, DatabaseUser.name)
            .join(DatabaseUser, DatabaseUser.id == database_grants.c.user_id)
            .where(database_grants.c.database_id.in_([d.id for d in rows]))
            .order_by(DatabaseUser.name)
        ):
            granted.setdefault(db_id, []).append(user)
        dbs = [(d.name, d.engine, d.host_id, granted.get(d.id, [])) for d in rows]
        store = (
            hosts.place(session, HostRole.backup, Backup)
            if not p.get("backup_host_id")
            else session.get_one(Host, p["backup_host_id"])
        )
        if HostRole.backup.value not in store.roles:
            raise TaskFailed(f"host {store.name} is not a backup host")
        root = site_root(account.slug, site.document_root)
        site_id, web_id, domain, slug = site.id, site.host_id, site.domain, account.slug
        store_id, store_name = store.id, store.name
        settings = {"php": site.php, "https": site.https, "https_redirect": site.https_redirect}
    path = f"{job.settings.backup_dir}/{slug}/{domain}-site{site_id}/{_stamp()}-t{job.task_id}"
    job.say(f"backing up {domain} to {store_name}:{path}", 5)
    manifest: dict[str, Any] = {
        "site": {
            "id": site_id,
            "domain": domain,
            "account": slug,
            "document_root": root,
            **settings,
        },
        "created_at": utcnow().isoformat(),
        "databases": [],
    }
    try:
        with job.host(store_id) as backup, job.host(web_id) as web, job.hosts() as db_hosts:
            copied = pipe(
                web, tar_argv(root, gz=True),
                backup, ["sh", "-c", _STORE, "konbit", f"{path}/files.tar.gz"],
                f"files of {domain}",
            )  # fmt: skip
            manifest["files"] = {
                "file": "files.tar.gz",
                "bytes": copied.bytes,
                "sha256": copied.sha256,
            }
            job.say(f"files: {copied.bytes} bytes in {copied.seconds:.1f}s", 50)
            for i, (name, engine, db_host, users) in enumerate(dbs):
                file = f"db-{name}.{engine}.sql.gz"
                got = pipe(
                    db_hosts(db_host), dump_argv(engine, name),
                    backup, ["sh", "-c", _STORE, "konbit", f"{path}/{file}"],
                    f"{engine} database {name}",
                )  # fmt: skip
                manifest["databases"].append(
                    {
                        "name": name,
                        "engine": engine,
                        "file": file,
                        "bytes": got.bytes,
                        "sha256": got.sha256,
                        "users": users,  # a restore grants them again a remade database
                    }
                )
                job.say(
                    f"database {name}: {got.bytes} bytes in {got.seconds:.1f}s",
                    50 + 40 * (i + 1) // max(len(dbs), 1),
                )
            backup.run(
                ["sh", "-c", _STORE, "konbit", f"{path}/manifest.json"],
                stdin=json.dumps(manifest, indent=2).encode(),
                check=True,
            )
            size = int(
                backup.run(["sh", "-c", _SIZE, "konbit", path], check=True).text().strip() or 0
            )
    except BaseException:
        _remove_quietly(job, store_id, path)
        raise
    with job.db.session() as session:
        row = Backup(
            account_id=p["account_id"],
            site_id=site_id,
            domain=domain,
            host_id=store_id,
            path=path,
            size_bytes=size,
            files_bytes=manifest["files"]["bytes"],
            databases=manifest["databases"],
            site=settings,
            task_id=job.task_id,
            scheduled=bool(p.get("scheduled")),
        )
        session.add(row)
        session.commit()
        backup_id = row.id
    job.result(backup_id=backup_id, size_bytes=size)
    job.say(f"backup {backup_id}: {size} bytes", 95)
    prune(job, site_id)


def _remove_quietly(job: Job, host_id: int, path: str) -> None:
    try:
        with job.host(host_id) as conn:
            conn.run(["rm", "-rf", "--", path])
    except TransportError:
        pass


def prune(job: Job, site_id: int) -> None:
    """Retention: keep the newest ``backup_keep_count`` backups of a site that are younger
    than ``backup_keep_days``; the newest one is kept whatever its age."""
    keep, days = job.settings.backup_keep_count, job.settings.backup_keep_days
    cutoff = utcnow() - dt.timedelta(days=days)
    with job.db.session() as session:
        rows = session.scalars(
            select(Backup).where(Backup.site_id == site_id).order_by(Backup.id.desc())
        ).all()
        drop = [
            (b.id, b.host_id, b.path)
            for i, b in enumerate(rows)
            if i > 0 and (i >= keep or b.created_at < cutoff)
        ]
    with job.hosts() as stores:
        for backup_id, host_id, path in drop:
            stores(host_id).run(["rm", "-rf", "--", path], check=True)
            with job.db.session() as session:
                row = session.get(Backup, backup_id)
                if row is not None:
                    session.delete(row)
                session.commit()
            job.say(f"retention: removed backup {backup_id}")


# ---------------------------------------------------------------- restore and clone


@dataclass(frozen=True)
class Load:
    """One dump into one database: from ``src`` (a dump's or a database's name) into
    ``dst`` on ``host_id``; ``archive``: its current contents go to the archive first."""

    src: str
    dst: str
    engine: str
    host_id: int
    db_id: int
    archive: bool = False


def _copy_databases(
    job: Job,
    source: Callable[[str, str], tuple[Connection, list[str]]],
    loads: list[Load],
    slug: str,
    first: int,
    span: int,
) -> None:
    """Each load: ``source`` (a dump in the store, or a live database) → its target."""
    with job.hosts() as targets:
        for i, x in enumerate(loads):
            dst = targets(x.host_id)
            if x.archive:
                kept = archive_database(dst, x.engine, x.dst, slug)
                job.say(f"database {x.dst}: its current contents are archived in {kept}")
            conn, argv = source(x.src, x.engine)
            got = pipe(conn, argv, dst, load_argv(x.engine, x.dst), f"database {x.src} → {x.dst}")
            job.say(
                f"database {x.src} → {x.dst}: {got.bytes} bytes in {got.seconds:.1f}s",
                first + span * (i + 1) // max(len(loads), 1),
            )


def archive_database(conn: Connection, engine: str, name: str, slug: str) -> str:
    """A dump of the database into the db host's archive (``_ARCHIVE_DB``); its directory."""
    pg_bin = conn.run(["sh", "-c", _PG_BIN]).text().strip() if engine != "mariadb" else ""
    where = f"{DB_ARCHIVE_DIR}/{slug}"
    conn.run(["sh", "-c", _ARCHIVE_DB, "konbit", engine, name, where, pg_bin], check=True)
    return where


def _databases_by_name(session: Session, account_id: int) -> dict[str, DbModel]:
    """Every database of the account (whatever its status), by name."""
    stmt = select(DbModel).where(DbModel.account_id == account_id)
    return {d.name: d for d in session.scalars(stmt)}


def _wait_site(job: Job, site_id: int, what: str) -> None:
    """The site (and its databases) on their hosts before data goes in."""
    with job.db.session() as session:
        site = session.get_one(Site, site_id)
        host_id, status = site.host_id, site.status
    if status != ObjectStatus.active:
        _require_active(job.db, site_id, job.converge(host_id, what), what)


def _wait_databases(job: Job, db_ids: list[int]) -> None:
    with job.db.session() as session:
        rows = session.scalars(select(DbModel).where(DbModel.id.in_(db_ids))).all()
        pending = sorted({d.host_id for d in rows if d.status != ObjectStatus.active})
    for host_id in pending:
        job.converge(host_id, "databases")
    with job.db.session() as session:
        bad = session.scalars(
            select(DbModel).where(DbModel.id.in_(db_ids), DbModel.status != ObjectStatus.active)
        ).all()
        if bad:
            raise TaskFailed(
                "databases not ready: "
                + ", ".join(f"{d.name} ({d.status_reason or d.status})" for d in bad)
            )


def rewrite_config(job: Job, conn: Connection, root: str, user: str, names: dict[str, str]) -> None:
    """The application's config files under ``root`` that name a database, user or host
    that changed now name the new one (``_REWRITE``, run as the site's unix user)."""
    pairs = [x for old, new in sorted(names.items()) if old != new for x in (old, new)]
    if not pairs:
        return
    got = conn.run(["runuser", "-u", user, "--", "perl", "-e", _REWRITE, "--", root, *pairs])
    changed = got.text().split()
    if changed:
        job.say(
            f"config naming {', '.join(sorted(set(pairs[0::2])))} rewritten: {', '.join(changed)}"
        )
    if not got.ok:
        job.say(f"config rewrite incomplete (fix by hand): {got.error_text(500)}")


def do_restore(job: Job) -> None:
    """From a backup, into its own site (in place: the replaced files and databases are
    archived first) or into a new site made by the API (``target_site_id``; its
    databases are copies, or made again when the backup's are gone)."""
    p = job.params()
    with job.db.session() as session:
        b = session.get(Backup, p["backup_id"])
        if b is None:
            raise TaskFailed(f"backup {p['backup_id']} no longer exists")
        target, account = _site(session, p.get("target_site_id") or p["site_id"])
        store_id, path, dumps = b.host_id, b.path, list(b.databases)
        renames: dict[str, str] = p.get("database_names") or {}
        in_place = not p.get("target_site_id")
        replace = set(p["replace"] if "replace" in p else renames.values() if in_place else ())
        by_name = _databases_by_name(session, account.id)
        loads: list[Load] = []
        for dump in dumps:
            name = renames.get(dump["name"], dump["name"])
            row = by_name.get(name)
            if row is None or row.status == ObjectStatus.deleting:
                job.say(f"database {name} no longer exists: its dump is left in the backup")
                continue
            loads.append(
                Load(dump["name"], name, dump["engine"], row.host_id, row.id, name in replace)
            )
        files = {d["name"]: d["file"] for d in dumps}
        root = site_root(account.slug, target.document_root)
        site_id, web_id, slug, domain = target.id, target.host_id, account.slug, target.domain
    job.say(
        f"restoring backup {p['backup_id']} into {domain}" + (" (in place)" if in_place else ""), 5
    )
    _wait_site(job, site_id, domain)
    _wait_databases(job, [x.db_id for x in loads])
    archive = (
        f"{ARCHIVE_DIR}/{slug}/{domain}-site{site_id}-before-restore-{_stamp()}" if in_place else ""
    )
    with job.host(store_id) as backup:
        with job.host(web_id) as web:
            got = pipe(
                backup, ["cat", "--", f"{path}/files.tar.gz"],
                web, put_files_argv(root, slug, f"restore-{job.task_id}", archive),
                f"files of {domain}",
            )  # fmt: skip
            job.say(
                f"files: {got.bytes} bytes in {got.seconds:.1f}s"
                + (f"; the replaced ones are in {archive}" if archive else ""),
                50,
            )
            rewrite_config(job, web, root, slug, {**renames, **(p.get("user_names") or {})})
        _copy_databases(
            job,
            lambda name, _engine: (backup, ["cat", "--", f"{path}/{files[name]}"]),
            loads,
            slug,
            50,
            45,
        )
    job.result(site_id=site_id)


def do_clone(job: Job) -> None:
    """Files and databases of a site into a new site (made by the API with its new
    databases and users): straight from host to host through the panel; the copy's
    config files name its own databases and users."""
    p = job.params()
    with job.db.session() as session:
        src, account = _site(session, p["site_id"])
        dst, _ = _site(session, p["target_site_id"])
        renames: dict[str, str] = p["database_names"]
        rows = _databases_by_name(session, account.id)
        loads = [
            Load(a, b, rows[a].engine, rows[b].host_id, rows[b].id)
            for a, b in renames.items()
            if a in rows and b in rows
        ]
        src_hosts = {a: rows[a].host_id for a in renames if a in rows}
        src_root = site_root(account.slug, src.document_root)
        dst_root = site_root(account.slug, dst.document_root)
        src_web, dst_id, dst_domain, slug = src.host_id, dst.id, dst.domain, account.slug
    job.say(f"cloning {src_root} into {dst_domain}", 5)
    _wait_site(job, dst_id, dst_domain)
    _wait_databases(job, [x.db_id for x in loads])
    with job.host(src_web) as a:
        with job.db.session() as session:
            dst_web = session.get_one(Site, dst_id).host_id
        with job.host(dst_web) as b:
            got = pipe(
                a, tar_argv(src_root, gz=False),
                b, put_files_argv(dst_root, slug, f"clone-{job.task_id}", "", gz=False),
                f"files into {dst_domain}",
            )  # fmt: skip
            job.say(f"files: {got.bytes} bytes in {got.seconds:.1f}s", 50)
            rewrite_config(job, b, dst_root, slug, {**renames, **(p.get("user_names") or {})})
    with job.hosts() as sources:

        def source(name: str, engine: str) -> tuple[Connection, list[str]]:
            return sources(src_hosts[name]), dump_argv(engine, name)

        _copy_databases(job, source, loads, slug, 50, 45)
    job.result(site_id=dst_id)


# ---------------------------------------------------------------- migrate


def do_migrate(job: Job) -> None:
    p = job.params()
    old_id = migrate_site(job, p["site_id"], p["host_id"])
    job.result(site_id=p["site_id"], old_host_id=old_id, host_id=p["host_id"])


def migrate_site(job: Job, site_id: int, new_id: int) -> int:
    """Move a site to another web host.  Until the new host serves it (checked by a GET
    through the new host's own loopback), any failure moves it back: the old host is
    never touched before that, so the site keeps serving from it.  Then the old host
    drops the vhost and its copy of the files goes to its archive.  Returns the old
    host's id."""
    with job.db.session() as session:
        site, account = _site(session, site_id)
        new = session.get_one(Host, new_id)
        old_id = site.host_id
        if old_id == new_id:
            raise TaskFailed(f"{site.domain} is already on {new.name}")
        if HostRole.web.value not in new.roles or not new.enabled:
            raise TaskFailed(f"host {new.name} is not an enabled web host")
        root = site_root(account.slug, site.document_root)
        domain, slug, site_id = site.domain, account.slug, site.id
    tag = f"migrate-{job.task_id}"
    with job.host(old_id) as a, job.host(new_id) as b:
        before = probe(a, domain)
        job.say(f"{domain} answers {before.status} on the old host", 5)
        keys = a.run(["test", "-d", key_dir(site_id)]).ok
        switched = False
        try:
            if keys:  # ACME and uploaded keys: the vhost needs them before it validates
                pipe(
                    a, ["tar", "-C", PRIVATE_ROOT, "-czf", "-", f"site-{site_id}"],
                    b, ["sh", "-c", _UNTAR_KEYS, "konbit", PRIVATE_ROOT],
                    f"TLS keys of {domain}",
                )  # fmt: skip
                job.say("TLS keys copied", 10)
            _switch(job, site_id, old_id, new_id)
            switched = True
            _require_active(
                job.db, site_id, job.converge(new_id, "new host"), "the new host refused the site"
            )
            job.say("the new host carries the vhost", 40)
            got = pipe(
                a, tar_argv(root, gz=False),
                b, put_files_argv(root, slug, tag, "", gz=False),
                f"files of {domain}",
            )  # fmt: skip
            job.say(f"files: {got.bytes} bytes in {got.seconds:.1f}s", 70)
            after = probe(b, domain)
            ok = after.status == before.status if before.status < 500 else after.status < 500
            if not ok:
                raise TaskFailed(
                    f"{domain} answers {after.status} on the new host, "
                    f"{before.status} on the old one"
                )
            job.say(f"{domain} answers {after.status} on the new host", 80)
        except BaseException as exc:
            job.say(f"moving back to the old host: {exc}")
            _move_back(job, site_id, old_id, new_id, root, keys, switched)
            raise
    report = job.converge(old_id, "old host")
    if report.result not in ("applied", "noop"):
        job.say("the old host did not drop the vhost yet; the worker retries it")
    with job.host(old_id) as a:
        archived = f"{ARCHIVE_DIR}/{slug}/{domain}-site{site_id}-migrated"
        a.run(["sh", "-c", ARCHIVE_SCRIPT, "konbit", root, archived], check=True)
        if keys:
            a.run(["rm", "-rf", "--", key_dir(site_id)], check=True)
    job.say(f"the old copy is archived on the old host ({archived}-<time>)", 95)
    return old_id


def _switch(job: Job, site_id: int, from_id: int, to_id: int) -> None:
    """The site belongs to ``to_id`` now; only that host is made dirty here."""
    with job.db.session() as session:
        site = session.get_one(Site, site_id)
        site.host_id = to_id
        mark_pending(site)
        hosts.bump_generations(session, [to_id])
        session.commit()


def _move_back(
    job: Job,
    site_id: int,
    old_id: int,
    new_id: int,
    root: str,
    keys: bool,
    switched: bool,
) -> None:
    """The site belongs to the old host again, which settles it active whatever the new
    host does; what the new host got is dropped (now, or by a clean-up task)."""
    if switched:
        with job.db.session() as session:
            site = session.get_one(Site, site_id)
            site.host_id = old_id
            account_id = site.account_id
            hosts.bump_generations(session, [old_id, new_id])
            session.commit()
        # The new host may blame its leftover vhost on the site (and fail it): only then
        # is the site made pending again, for the old host to settle it active.
        _settle_quietly(job, new_id, "new host (dropping the vhost)")
        with job.db.session() as session:
            mark_pending(session.get_one(Site, site_id))
            session.commit()
        _settle_quietly(job, old_id, "old host")
    else:
        with job.db.session() as session:
            account_id = session.get_one(Site, site_id).account_id
    paths = [root, *([key_dir(site_id)] if keys else [])]
    leftovers(job, new_id, account_id, paths=paths)


def _settle_quietly(job: Job, host_id: int, what: str) -> None:
    try:
        job.converge(host_id, what)
    except Exception as exc:  # the worker reconciles the host again on its own
        job.say(f"{what} did not settle yet (the worker retries it): {exc}")


# ---------------------------------------------------------------- leftovers of a failed move

CLEANUP_RETRY_LIMIT = 288  # one attempt per lifecycle round (~5 min): a day


def leftovers(
    job: Job,
    host_id: int,
    account_id: int,
    *,
    databases: Sequence[tuple[str, str]] = (),
    users: Sequence[tuple[str, str]] = (),
    paths: Sequence[str] = (),
) -> None:
    """What a failed move copied to ``host_id`` is dropped now, or, when that host does
    not answer, by a clean-up task retried every few minutes: a copy of a member's
    files or credentials must not stay behind on a host the panel no longer points at."""
    todo: dict[str, Any] = {
        "host_id": host_id,
        "databases": [list(x) for x in databases],
        "users": [list(x) for x in users],
        "paths": list(paths),
    }
    try:
        drop_leftovers(job, todo)
    except Exception as exc:
        task_id = _queue_cleanup(job, account_id, todo, 1)
        job.say(f"clean-up on the new host incomplete ({exc}); task {task_id} retries it")


def drop_leftovers(job: Job, todo: dict[str, Any]) -> None:
    """Drop the databases, users and paths of ``todo`` on its host, except those the panel
    has placed there since (a later move may have put them there for good)."""
    host_id = todo["host_id"]
    with job.db.session() as session:
        live_dbs = {
            (d.name, d.engine)
            for d in session.scalars(
                select(DbModel).where(
                    DbModel.host_id == host_id,
                    DbModel.name.in_([n for n, _ in todo["databases"]]),
                )
            )
        }
        live_users = {
            (u.name, u.engine)
            for u in session.scalars(
                select(DatabaseUser).where(
                    DatabaseUser.host_id == host_id,
                    DatabaseUser.name.in_([n for n, _ in todo["users"]]),
                )
            )
        }
        live_roots = {
            site_root(slug, root)
            for root, slug in session.execute(
                select(Site.document_root, Account.slug)
                .join(Account, Account.id == Site.account_id)
                .where(Site.host_id == host_id)
            )
        }
    dbs = [(n, e) for n, e in todo["databases"] if (n, e) not in live_dbs]
    users = [(n, e) for n, e in todo["users"] if (n, e) not in live_users]
    paths = [p for p in todo["paths"] if p not in live_roots]
    if not (dbs or users or paths):
        return
    with job.host(host_id) as conn:
        drop_all(conn, dbs, users)
        for path in paths:
            conn.run(["sh", "-c", 'rm -rf -- "$1" "$1".konbit-*', "konbit", path], check=True)
    job.say("dropped on the new host: " + ", ".join([n for n, _ in dbs + users] + paths))


def _queue_cleanup(job: Job, account_id: int | None, todo: dict[str, Any], attempt: int) -> int:
    """A clean-up task left queued, not nudged: the lifecycle round takes queued tasks
    after five minutes, which spaces the attempts."""
    with job.db.session() as session:
        task = Task(
            account_id=account_id,
            kind=TaskKind.cleanup,
            params={**todo, "attempt": attempt, "after_task": job.task_id},
        )
        session.add(task)
        session.commit()
        return task.id


def do_cleanup(job: Job) -> None:
    p = job.params()
    try:
        drop_leftovers(job, p)
    except (TaskFailed, TransportError) as exc:
        names = ", ".join([n for n, _ in p["databases"] + p["users"]] + p["paths"])
        if p["attempt"] >= CLEANUP_RETRY_LIMIT:
            raise TaskFailed(
                f"host {p['host_id']} did not answer for {p['attempt']} attempts; "
                f"drop by hand there: {names} ({exc})"
            ) from None
        with job.db.session() as session:
            account_id = session.get_one(Task, job.task_id).account_id
        nxt = _queue_cleanup(job, account_id, p, p["attempt"] + 1)
        raise TaskFailed(f"{exc}; task {nxt} tries again in a few minutes") from None


def do_migrate_database(job: Job) -> None:
    p = job.params()
    old_id = migrate_databases(job, [p["database_id"]], p["host_id"])
    job.result(database_id=p["database_id"], old_host_id=old_id, host_id=p["host_id"])


def migrate_databases(job: Job, db_ids: list[int], new_id: int) -> int:
    """Move databases of one account from one db host to another, with the users whose
    grants are all on them: create there, copy the data, point the account's sites'
    config at the new host, then dump the old copies into the old host's archive and
    drop them.  On a failure before every copy completed, everything points back.
    Returns the old host's id."""
    with job.db.session() as session:
        dbs = session.scalars(select(DbModel).where(DbModel.id.in_(db_ids))).all()
        if len(dbs) != len(set(db_ids)):
            raise TaskFailed("a database to move no longer exists")
        old_ids = {d.host_id for d in dbs}
        account_ids = {d.account_id for d in dbs}
        if len(old_ids) != 1 or len(account_ids) != 1:
            raise TaskFailed("databases move together only from one host of one account")
        old_id, account_id = old_ids.pop(), account_ids.pop()
        new, old = session.get_one(Host, new_id), session.get_one(Host, old_id)
        if HostRole.db.value not in new.roles or not new.enabled or old_id == new_id:
            raise TaskFailed(f"host {new.name} is not another enabled db host")
        on_old = session.scalars(
            select(DatabaseUser)
            .where(DatabaseUser.account_id == account_id, DatabaseUser.host_id == old_id)
            .options(selectinload(DatabaseUser.databases))
        ).all()
        ids = {d.id for d in dbs}
        moving = [u for u in on_old if any(x.id in ids for x in u.databases)]
        for u in moving:
            others = [x.name for x in u.databases if x.id not in ids]
            if others:
                raise TaskFailed(
                    f"user {u.name} also has {', '.join(others)}; move those databases "
                    "together (or the whole account)"
                )
        slug = session.get_one(Account, account_id).slug
        moved = [(d.name, d.engine) for d in dbs]
        users = [(u.name, u.engine) for u in moving]
        frozen: list[tuple[str, str]] = []
        kept_dumps = {n: f"{DB_ARCHIVE_DIR}/{slug}/{n}-{e}-{_stamp()}.sql.gz" for n, e in moved}
        hostnames = {old.address: new.address, old.name: new.name}
        sites = [
            (s.host_id, site_root(slug, s.document_root))
            for s in session.scalars(
                select(Site).where(
                    Site.account_id == account_id, Site.status != ObjectStatus.deleting
                )
            )
        ]
        objs: list[DbModel | DatabaseUser] = [*dbs, *moving]
        for obj in objs:
            obj.host_id = new_id
            mark_pending(obj)
        hosts.bump_generations(session, [new_id])
        session.commit()
        user_ids = [u.id for u in moving]
    job.say(
        f"moving databases {', '.join(n for n, _ in moved)} and users "
        f"{', '.join(n for n, _ in users) or '-'} from {old.name} to {new.name}",
        5,
    )
    try:
        job.converge(new_id, "new db host")
        _wait_databases(job, db_ids)
        frozen = users
        _copy_locked(job, old_id, new_id, moved, users, kept_dumps)
    except BaseException as exc:
        job.say(f"moving back: {exc}")
        _databases_back(job, db_ids, user_ids, old_id, new_id, moved, frozen, kept_dumps)
        raise
    with job.hosts() as webs:
        for web_id, root in sites:
            rewrite_config(job, webs(web_id), root, slug, hostnames)
    _retire(job, old_id, moved, users, kept_dumps)
    job.say("the old copies, as sent, are in the old host's archive; dropped there", 95)
    return old_id


def _retire(
    job: Job,
    old_id: int,
    moved: list[tuple[str, str]],
    users: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """The old copies: their dumps (as sent) kept in the old host's archive, then dropped
    with their users."""
    with job.host(old_id) as a:
        a.run(["sh", "-c", _KEEP, "konbit", *kept.values()], check=True)
        drop_all(a, moved, users)


def _copy_locked(
    job: Job,
    old_id: int,
    new_id: int,
    moved: list[tuple[str, str]],
    users: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """The databases' data, old host → new host, their users locked out meanwhile; the
    old host keeps what it sent (``kept``: the archive paths)."""
    with job.host(old_id) as a, job.host(new_id) as b:
        freeze(a, users, lock=True)
        job.say(
            f"users {', '.join(n for n, _ in users) or '-'} locked out on the old host "
            "until the move ends: nothing written meanwhile is lost"
        )
        for i, (name, engine) in enumerate(moved):
            got = pipe(
                a,
                dump_argv(engine, name, kept[name]),
                b,
                load_argv(engine, name),
                f"database {name}",
            )
            job.say(
                f"{name}: {got.bytes} bytes in {got.seconds:.1f}s",
                10 + 60 * (i + 1) // len(moved),
            )


def _databases_back(
    job: Job,
    db_ids: list[int],
    user_ids: list[int],
    old_id: int,
    new_id: int,
    moved: list[tuple[str, str]],
    frozen: list[tuple[str, str]],
    kept: dict[str, str],
) -> None:
    """A database move that failed: everything points at the old host again and is
    settled there first (the old copies were never touched; its users may log in
    again), then what the new host got so far is dropped."""
    if frozen:
        try:
            with job.host(old_id) as a:
                freeze(a, frozen, lock=False)
                a.run(["rm", "-f", "--", *(f"{k}.partial" for k in kept.values())])
        except Exception as exc:
            job.say(f"users {', '.join(n for n, _ in frozen)} still locked on the old host: {exc}")
    with job.db.session() as session:
        back: list[DbModel | DatabaseUser] = [
            *session.scalars(select(DbModel).where(DbModel.id.in_(db_ids))),
            *session.scalars(select(DatabaseUser).where(DatabaseUser.id.in_(user_ids))),
        ]
        for obj in back:
            obj.host_id = old_id
            mark_pending(obj)
        account_id = back[0].account_id
        users = [(u.name, u.engine) for u in back if isinstance(u, DatabaseUser)]
        hosts.bump_generations(session, [old_id, new_id])
        session.commit()
    _settle_quietly(job, old_id, "old db host")
    leftovers(job, new_id, account_id, databases=moved, users=users)


def freeze(conn: Connection, users: Sequence[tuple[str, str]], lock: bool) -> None:
    """Lock the users out of the old host (their sessions ended) while their databases
    are copied, or let them in again: a write during the copy fails visibly instead of
    landing in a copy that is about to be dropped."""
    for engine in sorted({e for _, e in users}):
        names = [n for n, e in users if e == engine]
        if engine == "mariadb":
            verb = "LOCK" if lock else "UNLOCK"
            sql = "".join(
                f"ALTER USER IF EXISTS {mysql_account(n)} ACCOUNT {verb};\n" for n in names
            )
            if lock:
                listed = ", ".join(mysql_str(n) for n in names)
                sql += (
                    "SELECT id FROM information_schema.processlist "  # noqa: S608 - quoted
                    f"WHERE user IN ({listed});\n"
                )
            out = conn.run(
                ["mariadb", "--batch", "--skip-column-names"], stdin=sql.encode(), check=True
            )
            kills = "".join(
                f"KILL CONNECTION {int(x)};\n" for x in out.text().split() if x.isdigit()
            )
            if kills:  # a session that ended meanwhile: not an error
                conn.run(["mariadb", "--batch", "--force"], stdin=kills.encode())
        else:
            attr = "NOLOGIN" if lock else "LOGIN"
            sql = "".join(f"ALTER ROLE {pg_ident(n)} {attr};\n" for n in names)
            if lock:
                listed = ", ".join(pg_str(n) for n in names)
                sql += (
                    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "  # noqa: S608
                    f"WHERE usename IN ({listed});\n"  # all quoted by pg_str
                )
            conn.run(["sh", "-c", _PSQL], stdin=sql.encode(), check=True)


def do_migrate_account(job: Job) -> None:
    """Every site of the account to one web host, then every database to one db host,
    each as a single move would; one that fails stays where it was (and serving) and the
    others go on.  The task fails at the end naming the ones left behind."""
    p = job.params()
    web_to: int = p.get("web_host_id") or 0
    db_to: int = p.get("db_host_id") or 0
    with job.db.session() as session:
        site_rows = session.scalars(
            select(Site).where(Site.account_id == p["account_id"]).order_by(Site.id)
        ).all()
        sites = [(s.id, s.domain, s.status) for s in site_rows if web_to and s.host_id != web_to]
        db_rows = session.scalars(
            select(DbModel).where(DbModel.account_id == p["account_id"]).order_by(DbModel.id)
        ).all()
        target = session.get_one(Host, db_to) if db_to else None
        groups: dict[int, list[tuple[int, str, str]]] = {}
        for d in db_rows:
            if db_to and d.host_id != db_to:
                served = target is not None and serves_engine(target, d.engine)
                status = d.status if served else f"{d.engine}, not served there"
                groups.setdefault(d.host_id, []).append((d.id, d.name, status))
    steps = len(sites) + len(groups)
    job.say(f"moving {len(sites)} sites and {sum(map(len, groups.values()))} databases", 1)
    left: list[str] = []
    moved = 0
    for i, (site_id, domain, status) in enumerate(sites):
        if status != ObjectStatus.active:
            left.append(f"{domain} (it is {status})")
            continue
        with job.part(100 * i // steps, 100 * (i + 1) // steps):
            try:
                migrate_site(job, site_id, web_to)
                moved += 1
            except (TaskFailed, TransportError) as exc:
                left.append(f"{domain} ({exc})")
    for j, rows in enumerate(groups.values()):
        i = len(sites) + j
        names = ", ".join(n for _, n, _ in rows)
        bad = [f"{n} (it is {st})" for _, n, st in rows if st != ObjectStatus.active]
        if bad:
            left += bad
            continue
        with job.part(100 * i // steps, 100 * (i + 1) // steps):
            try:
                migrate_databases(job, [x for x, _, _ in rows], db_to)
                moved += len(rows)
            except (TaskFailed, TransportError) as exc:
                left.append(f"{names} ({exc})")
    job.result(moved=moved, left=len(left))
    if left:
        raise TaskFailed(f"moved {moved}; still on their old hosts: " + "; ".join(left))


def drop_all(
    conn: Connection, dbs: Sequence[tuple[str, str]], users: Sequence[tuple[str, str]]
) -> None:
    """Drop databases and users, each a (name, engine): one client run per engine."""
    for engine in sorted({e for _, e in [*dbs, *users]}):
        names = [n for n, e in dbs if e == engine]
        logins = [n for n, e in users if e == engine]
        if engine == "mariadb":
            sql = "".join(f"DROP DATABASE IF EXISTS {mysql_ident(n)};\n" for n in names) + "".join(
                f"DROP USER IF EXISTS {mysql_account(u)};\n" for u in logins
            )
            conn.run(["mariadb", "--batch"], stdin=sql.encode(), check=True)
        else:
            sql = (
                "".join(f"DROP DATABASE IF EXISTS {pg_ident(n)} WITH (FORCE);\n" for n in names)
                + "".join(f"DROP ROLE IF EXISTS {pg_ident(u)};\n" for u in logins)
                + "".join(f"DROP ROLE IF EXISTS {pg_ident(pg_owner(n))};\n" for n in names)
            )
            conn.run(["sh", "-c", _PSQL], stdin=sql.encode(), check=True)


_PG_BIN = "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"
