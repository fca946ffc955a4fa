# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key, which PEP 544 allows and mypy flags:
# python/mypy#4717.)
"""The worker side of lifecycle tasks: backup, restore, clone, migrate, clean-up.

Every byte goes host → panel → host (``panel.tasks.streams.pipe``).  A task writes its
progress and log to its row as it goes; the API shows them.  What runs on the hosts comes
from the installed plugins (``provisioners.api.operations``): this package knows no host
path, script nor SQL.  Layout of one backup in the store (a directory on a backup host)::

    <backup_dir>/<slug>/<domain>-site<id>/<UTC time>-t<task>/
        files.tar.gz                   the document root (numeric owners)
        db-<name>.<engine>.sql.gz      one dump per database
        manifest.json                  what is in it, sizes and SHA-256 of every part
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.orm import Session, selectinload

from panel.accounts.models import Account
from panel.core.db import Database, ObjectStatus, utcnow
from panel.core.settings import Settings
from panel.databases.models import Database as DbModel
from panel.hosts.models import Host
from panel.hosts.reconcile import Report, connect, reconcile_host
from panel.sites.models import Site
from panel.tasks.models import Task, TaskStatus
from provisioners.api import (
    BackupStore,
    DatabaseEngine,
    NotOffered,
    Provisioner,
    SiteFiles,
    SiteKeys,
    offered,
)
from provisioners.api.operations import Command
from provisioners.transport import Connection, Result, Target

log = logging.getLogger("konbit.tasks")
CLAIM = dt.timedelta(hours=6)  # a task running longer than this is taken as dead
CONVERGE_TIMEOUT = 600.0
T = TypeVar("T")


class TaskFailed(Exception):
    """The task stops here; the message is shown to the member."""


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

    def files(self) -> SiteFiles:
        return self._offered(SiteFiles)

    def keys(self) -> SiteKeys:
        return self._offered(SiteKeys)

    def store(self) -> BackupStore:
        return self._offered(BackupStore)

    def engine(self, engine: str) -> DatabaseEngine:
        return self._offered(DatabaseEngine, engine)

    def _offered(self, protocol: type[T], name: str | None = None) -> T:
        try:
            return offered(self.plugins, protocol, name)
        except NotOffered as exc:
            raise TaskFailed(str(exc)) from None

    def site_root(self, slug: str, document_root: str) -> str:
        return self.files().document_root(slug, document_root)

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


def run(conn: Connection, command: Command, *, check: bool = False) -> Result:
    """One operation's command on one host."""
    return conn.run(command.argv, stdin=command.stdin, check=check)


# ---------------------------------------------------------------- pieces every kind uses


def stamp() -> str:
    return utcnow().strftime("%Y%m%dT%H%M%SZ")


def load_site(session: Session, site_id: int) -> tuple[Site, Account]:
    site = session.get(Site, site_id, options=(selectinload(Site.aliases),))
    if site is None:
        raise TaskFailed(f"site {site_id} no longer exists")
    return site, session.get_one(Account, site.account_id)


def require_active(db: Database, site_id: int, report: Report, what: str) -> None:
    with db.session() as session:
        site = session.get(Site, site_id)
        status = site.status if site else None
        reason = site.status_reason if site else None
    if report.result not in ("applied", "noop") or status != ObjectStatus.active:
        raise TaskFailed(f"{what}: {reason or report.error or report.result}")


def wait_site(job: Job, site_id: int, what: str) -> None:
    """The site (and its databases) on their hosts before data goes in."""
    with job.db.session() as session:
        site = session.get_one(Site, site_id)
        host_id, status = site.host_id, site.status
    if status != ObjectStatus.active:
        require_active(job.db, site_id, job.converge(host_id, what), what)


def wait_databases(job: Job, db_ids: list[int]) -> None:
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
    that changed now name the new one (run as the site's unix user)."""
    renames = [(old, new) for old, new in sorted(names.items()) if old != new]
    if not renames:
        return
    got = run(conn, job.files().rewrite_names(root, user, renames))
    changed = got.text().split()
    if changed:
        job.say(
            f"config naming {', '.join(sorted({old for old, _ in renames}))} rewritten: "
            f"{', '.join(changed)}"
        )
    if not got.ok:
        job.say(f"config rewrite incomplete (fix by hand): {got.error_text(500)}")
