"""The worker's jobs: reconcile a dirty host, and sweep so that a lost message only delays.

Writes nudge the queue after their transaction commits (``install_after_commit``); the
host row's generations are the truth.  At most one nudge per host waits in the queue
(a ``put_if_empty`` marker the task clears when it starts), so a burst of writes costs
one reconcile, not one per write.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import secrets
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from huey import Huey, crontab
from sqlalchemy import event, or_, select
from sqlalchemy.orm import Session

import panel.models  # noqa: F401  (the whole schema and its listeners: DNS hosts follow tasks' writes)
from panel.core.db import Database, utcnow
from panel.core.outbox import take
from panel.core.settings import Settings
from panel.hosts.models import Host
from panel.hosts.reconcile import reconcile_host
from panel.worker.queue import make_huey
from provisioners.api import Provisioner
from provisioners.registry import load_plugins

log = logging.getLogger("konbit.worker")
LEASED_RETRY = dt.timedelta(seconds=2)


def _marker(host_id: int) -> str:
    return f"konbit:queued:{host_id}"


@dataclass
class Tasks:
    """The queue and its tasks, shared by API processes (to enqueue) and workers (to run)."""

    huey: Huey
    reconcile: Any
    sweep: Any
    db: Database
    collect_usage: Any = None
    acme: Any = None  # HTTPS certificates of one host's sites (panel.sites.acme)
    lifecycle: Any = None  # backup, restore, clone, migrate (panel.tasks.run)
    purge_web_sessions: Any = None  # daily: browser sessions past their lifetime

    def nudge(self, host_id: int) -> bool:
        """Enqueue a reconcile unless one is already waiting for this host."""
        if self.huey.put_if_empty(_marker(host_id), b"1"):
            self.reconcile(host_id)
            return True
        return False


def build(
    settings: Settings,
    db: Database,
    plugins: Sequence[Provisioner] | None = None,
    owner: str | None = None,
) -> Tasks:
    huey = make_huey(settings.effective_database_url)
    me = owner or f"{socket.gethostname()}:{os.getpid()}"
    loaded: list[Sequence[Provisioner]] = [plugins] if plugins is not None else []

    def get_plugins() -> Sequence[Provisioner]:
        if not loaded:
            loaded.append(load_plugins())
        return loaded[0]

    @huey.task(name="reconcile")  # type: ignore[untyped-decorator]
    def reconcile(host_id: int) -> None:
        huey.storage.pop_data(_marker(host_id))  # new writes from now on nudge again
        with db.session() as session:
            host = session.get(Host, host_id)
            if host is None or not host.enabled:
                return
            if host.applied_generation >= host.desired_generation:
                return
        # One owner per run: two threads of one process must not share a lease.
        report = reconcile_host(
            db, settings, host_id, get_plugins(), f"{me}/{secrets.token_hex(4)}"
        )
        if report is None:  # another worker holds the host: look again shortly
            reconcile.schedule((host_id,), delay=LEASED_RETRY.total_seconds())
            return
        with db.session() as session:
            host = session.get_one(Host, host_id)
            behind = host.applied_generation < host.desired_generation
            retry_at = host.retry_at
        if behind and retry_at is not None and retry_at > utcnow():
            reconcile.schedule((host_id,), eta=retry_at)
        elif behind:
            tasks.nudge(host_id)
        _acme_if_due(tasks, host_id, behind)

    @huey.periodic_task(crontab(minute="*"), name="sweep")  # type: ignore[untyped-decorator]
    def sweep() -> int:
        return sweep_now(tasks)

    @huey.periodic_task(crontab(hour="3", minute="17"), name="purge_audit")  # type: ignore[untyped-decorator]
    def purge_audit() -> int:
        """Audit events are kept only as long as the configured retention."""
        from panel.audit.service import purge_expired

        with db.session() as session:
            count = purge_expired(session, settings.audit_retention_days)
            session.commit()
        log.info("audit purged", extra={"events": count})
        return count

    tasks = Tasks(
        huey=huey,
        reconcile=reconcile,
        sweep=sweep,
        db=db,
        collect_usage=_usage_tasks(huey, settings, db, get_plugins, lambda: tasks),
        purge_web_sessions=_purge_web_sessions_task(huey, db),
        lifecycle=_lifecycle_tasks(huey, settings, db, get_plugins),
    )
    tasks.acme = _acme_tasks(huey, settings, db, tasks, get_plugins)
    return tasks


def _purge_web_sessions_task(huey: Huey, db: Database) -> Any:
    """Daily, like the audit purge: expired (or idled-out) browser sessions are deleted."""

    @huey.periodic_task(crontab(hour="3", minute="23"), name="purge_web_sessions")  # type: ignore[untyped-decorator]
    def purge_web_sessions() -> int:
        from panel.web.sessions import purge_expired

        with db.session() as session:
            count = purge_expired(session)
            session.commit()
        log.info("web sessions purged", extra={"sessions": count})
        return count

    return purge_web_sessions


def _usage_tasks(
    huey: Huey,
    settings: Settings,
    db: Database,
    get_plugins: Callable[[], Sequence[Provisioner]],
    current: Callable[[], Tasks],
) -> Any:
    """Usage: one collection per host each round, retried alone; finished days rolled up."""

    @huey.task(name="collect_usage")  # type: ignore[untyped-decorator]
    def collect_usage(host_id: int, at: str | None = None) -> None:
        """One host's usage; a failure is retried with back-off and blocks no other host."""
        from panel.usage.service import collect_host

        when = dt.datetime.fromisoformat(at) if at else None
        report = collect_host(db, settings, host_id, get_plugins(), when)
        if not report.ok:
            from panel.usage.models import HostUsage

            with db.session() as session:
                row = session.get(HostUsage, host_id)
                retry_at = row.retry_at if row else None
            if retry_at is not None:
                collect_usage.schedule((host_id, None), eta=retry_at)

    @huey.periodic_task(crontab(minute="*"), name="usage_round")  # type: ignore[untyped-decorator]
    def usage_round() -> int:
        """Every ``usage_interval_minutes``: one collection per host, all with the same time."""
        now = utcnow().replace(second=0, microsecond=0)
        if int(now.timestamp() // 60) % settings.usage_interval_minutes:
            return 0
        return usage_round_now(current(), now)

    @huey.periodic_task(crontab(minute="41"), name="usage_rollup")  # type: ignore[untyped-decorator]
    def usage_rollup() -> int:
        """Finished days into ``usage_daily``: a year of usage reads 365 rows per series."""
        from panel.usage.service import rollup_pending

        with db.session() as session:
            days = rollup_pending(session)
            session.commit()
        if days:
            log.info("usage rolled up", extra={"days": [d.isoformat() for d in days]})
        return len(days)

    return collect_usage


def usage_round_now(tasks: Tasks, at: dt.datetime) -> int:
    from panel.usage.service import hosts_due

    with tasks.db.session() as session:
        ids = hosts_due(session, at)
    for host_id in ids:
        tasks.collect_usage(host_id, at.isoformat())
    return len(ids)


def sweep_now(tasks: Tasks) -> int:
    """Nudge every enabled host whose applied generation lags and whose retry time came
    (a host another worker holds is nudged too: the task waits for the lease)."""
    now = utcnow()
    with tasks.db.session() as session:
        ids = session.scalars(
            select(Host.id).where(
                Host.enabled.is_(True),
                Host.applied_generation < Host.desired_generation,
                or_(Host.retry_at.is_(None), Host.retry_at <= now),
            )
        ).all()
    for host_id in ids:
        # A marker left by a worker killed before it ran the task must not block the sweep.
        tasks.huey.storage.pop_data(_marker(host_id))
        tasks.nudge(host_id)
    return len(ids)


def install_after_commit(db: Database, tasks: Tasks) -> None:
    """After a write commits, drain its outbox (``panel.core.outbox``): ACME orders, then
    queued tasks, then dirty hosts (never before the commit: the worker would read the old
    rows). A rollback empties it."""

    @event.listens_for(db.sessions, "after_commit")
    def _after_commit(session: Session) -> None:
        box = take(session)
        for host_id in sorted(box.acme_hosts):
            try:
                tasks.acme(host_id)
            except Exception:  # the periodic round will find it
                log.exception("could not enqueue an ACME order", extra={"host_id": host_id})
        for task_id in box.queued_tasks:
            try:
                tasks.lifecycle(task_id)
            except Exception:  # the lifecycle round will find it
                log.exception("could not enqueue a task", extra={"task_id": task_id})
        for host_id in sorted(box.dirty_hosts):
            try:
                tasks.nudge(host_id)
            except Exception:  # the sweep will find it; never fail a committed write
                log.exception("could not enqueue a reconcile", extra={"host_id": host_id})

    @event.listens_for(db.sessions, "after_rollback")
    def _after_rollback(session: Session) -> None:
        take(session)


def run_consumer(tasks: Tasks, workers: int) -> None:
    """Run the Huey consumer: hosts in parallel (one thread each), the sweep every minute."""
    consumer = tasks.huey.create_consumer(
        workers=workers,
        worker_type="thread",
        periodic=True,
        initial_delay=0.05,
        backoff=1.5,
        max_delay=0.5,
        check_worker_health=True,
    )
    sweep_now(tasks)  # at start: whatever was lost while no worker ran
    consumer.run()


def _acme_if_due(tasks: Tasks, host_id: int, behind: bool) -> None:
    """After a reconcile: a site that just went live in mode acme gets its order now."""
    from panel.sites.acme import due_sites

    if behind:
        return
    with tasks.db.session() as session:
        due = bool(due_sites(session, host_id=host_id))
    if due and tasks.acme is not None:
        tasks.acme(host_id)


def _acme_tasks(
    huey: Huey,
    settings: Settings,
    db: Database,
    tasks: Tasks,
    plugins: Callable[[], Sequence[Provisioner]],
) -> Any:
    """The ACME task (one host's due sites) and its periodic round."""

    @huey.task(name="acme")  # type: ignore[untyped-decorator]
    def acme(host_id: int) -> None:
        """ACME orders for the host's sites that need a certificate; a new certificate
        bumps the host's generation, so a reconcile serves it."""
        from panel.sites.acme import run_host

        outcomes = run_host(db, settings, host_id, plugins=plugins())
        if any(o.ok for o in outcomes):
            tasks.nudge(host_id)

    @huey.periodic_task(crontab(minute="*/5"), name="acme_round")  # type: ignore[untyped-decorator]
    def acme_round() -> int:
        """Renewals (two thirds into a certificate's life) and retries after back-off."""
        from panel.sites.acme import due_hosts

        with db.session() as session:
            ids = due_hosts(session)
        for host_id in ids:
            acme(host_id)
        return len(ids)

    return acme


def _lifecycle_tasks(huey: Huey, settings: Settings, db: Database, get_plugins: Any) -> Any:
    """Backup, restore, clone and migrate tasks, and a round that starts scheduled backups
    and re-enqueues tasks a lost message or a dead worker left behind."""

    @huey.task(name="lifecycle")  # type: ignore[untyped-decorator]
    def lifecycle(task_id: int) -> None:
        from panel.tasks.run.dispatch import run_task

        run_task(db, settings, task_id, get_plugins())

    @huey.periodic_task(crontab(minute="*"), name="lifecycle_round")  # type: ignore[untyped-decorator]
    def lifecycle_round() -> int:
        """Scheduled backups, platforms' automatic updates in their window, DKIM keys
        to make or drop, lost tasks."""
        from panel.apps.service import run_due_updates
        from panel.dns import dkim
        from panel.tasks.service import lost_tasks, run_due_schedules

        with db.session() as session:
            started = run_due_schedules(session)
            started += run_due_updates(session)
            started += dkim.due(session)
            lost = lost_tasks(session, dt.timedelta(minutes=5))
            session.commit()
        for task_id in [*started, *lost]:
            lifecycle(task_id)
        return len(started) + len(lost)

    @huey.periodic_task(crontab(hour="4", minute="7"), name="app_scan")  # type: ignore[untyped-decorator]
    def app_scan() -> int:
        """Daily: which application every site runs (the update status's inventory)."""
        from panel.apps.inventory import start_scan

        with db.session() as session:
            task = start_scan(session, None)
            task_id = task.id
            session.commit()
        lifecycle(task_id)
        return task_id

    return lifecycle
