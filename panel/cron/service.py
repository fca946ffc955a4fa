# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key, which PEP 544 allows and mypy flags:
# python/mypy#4717.)
"""Members' cron jobs beyond their spec: "run now" (a task) and their last runs.

A cron job is an object of kind ``cron_job`` (``/api/v1/objects/cron_job``, stored by
``panel.objects``); what runs on its web host comes from the plugin that offers
``CronJobs`` (``provisioners/cron.py``): this module knows no host path nor script.

The last runs are read from the host when asked (one SSH command): the host keeps them
(the last ten per job, written by the wrapper that cron runs), so the panel has nothing
to collect, store or let go stale, and a member sees a run the moment it ends.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.core.auth import Principal
from panel.core.db import Database, ObjectStatus
from panel.core.errors import Conflict, NotFound, Unavailable
from panel.core.objects import get_visible, get_writable
from panel.core.settings import Settings
from panel.hosts.models import Host
from panel.hosts.reconcile import connect
from panel.objects.models import PluginObject
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.tasks.run.job import Job, TaskFailed
from panel.tasks.service import ACTIVE_STATES, enqueue, record_started
from provisioners.api import CronJobs, NotOffered, Provisioner, TransportError, offered
from provisioners.transport import Target

KIND = "cron_job"
RUN_NOW = TaskKind.cron_run
RUNS_TIMEOUT = 30.0


def cron_ops(plugins: Sequence[Provisioner]) -> CronJobs:
    try:
        return offered(plugins, CronJobs)
    except NotOffered as exc:
        raise Unavailable(str(exc)) from None


def host_of(session: Session, obj: PluginObject) -> Host:
    """The web host a job lives on: its site's."""
    site = session.get(Site, obj.site_id) if obj.site_id is not None else None
    host = session.get(Host, site.host_id) if site is not None else None
    if host is None:
        raise Conflict("This cron job's site has no web host yet; try again once it has one.")
    return host


def start_run(session: Session, principal: Principal, obj: PluginObject) -> Task:
    """A "run now" task for the job: one at a time per job (409 while one is under way)."""
    if obj.status == ObjectStatus.deleting:
        raise Conflict("This cron job is being deleted; it can no longer run.")
    under_way = session.scalars(
        select(Task).where(
            Task.kind == RUN_NOW,
            Task.status.in_(ACTIVE_STATES),
            Task.account_id == obj.account_id,
        )
    )
    for other in under_way:
        if other.params.get("cron_job_id") == obj.id:
            raise Conflict(f"Task {other.id} is already running this job; wait for it to end.")
    task = enqueue(
        session,
        Task(
            account_id=obj.account_id,
            kind=RUN_NOW,
            site_id=obj.site_id,
            params={"cron_job_id": obj.id, "name": obj.name},
            user_id=principal.user.id,
        ),
    )
    record_started(session, principal, task, obj)
    return task


def _target(host: Host) -> Target:
    return Target(host.name, host.address, host.ssh_port, host.ssh_user, host.host_key)


def read_runs(
    db: Database,
    settings: Settings,
    plugins: Sequence[Provisioner],
    session: Session,
    obj: PluginObject,
    limit: int,
) -> list[dict[str, Any]]:
    """The job's last runs, read from its host now (503 when the host does not answer)."""
    ops = cron_ops(plugins)
    host = host_of(session, obj)
    command = ops.runs(obj.id, limit)
    try:
        with connect(settings, _target(host)) as conn:
            result = conn.run(command.argv, stdin=command.stdin, timeout=RUNS_TIMEOUT)
    except TransportError as exc:
        raise Unavailable(f"{host.name} did not answer ({exc}); try again later.") from None
    if not result.ok:
        raise Unavailable(
            f"reading the runs on {host.name} failed: {result.error_text(500)}; "
            "the provider's staff can check the host"
        )
    return [with_times(r) for r in ops.parse_runs(result.text())]


def with_times(run: dict[str, Any]) -> dict[str, Any]:
    """A record with its start and end as UTC times and its duration in seconds."""
    start = dt.datetime.fromtimestamp(run["started_ms"] / 1000, dt.UTC)
    end = dt.datetime.fromtimestamp(run["ended_ms"] / 1000, dt.UTC)
    return {
        **run,
        "started_at": start,
        "ended_at": end,
        "seconds": round((run["ended_ms"] - run["started_ms"]) / 1000, 3),
    }


def do_run(job: Job) -> None:
    """The worker side of "run now": the job on its host (reconciled first if its latest
    change is not there yet), its run's record in the task's log and result."""
    job_id = int(job.params()["cron_job_id"])
    with job.db.session() as session:
        obj = session.get(PluginObject, job_id)
        if obj is None or obj.kind != KIND or obj.status == ObjectStatus.deleting:
            raise TaskFailed(f"cron job {job_id} no longer exists")
        host_id, status = host_of(session, obj).id, obj.status
    if status != ObjectStatus.active:
        job.converge(host_id, "cron job")
        with job.db.session() as session:
            obj = session.get(PluginObject, job_id)
            if obj is None or obj.status != ObjectStatus.active:
                reason = obj.status_reason if obj else "deleted"
                raise TaskFailed(f"cron job {job_id} is not on its host: {reason}")
    try:
        ops = offered(job.plugins, CronJobs)
    except NotOffered as exc:
        raise TaskFailed(str(exc)) from None
    with job.db.session() as session:
        spec = session.get_one(PluginObject, job_id).spec
    command = ops.run_now(job_id)
    job.say("running the job on its host", 10)
    with job.host(host_id) as conn:
        result = conn.run(
            command.argv,
            stdin=command.stdin,
            timeout=float(spec.get("timeout_seconds", 3600)) + 60,
        )
    if result.exit_code == 75:
        raise TaskFailed(
            "the previous run of this job is still going; wait for it to end and try again"
        )
    if not result.ok:
        raise TaskFailed(f"the wrapper failed on the host: {result.error_text(1000)}")
    runs = ops.parse_runs(result.text())
    if not runs:
        raise TaskFailed("the job ran but left no record; the provider's staff can check")
    run = with_times(runs[0])
    job.say(
        f"exit code {run['exit_code']} after {run['seconds']} s"
        + "".join(f"; {n}" for n in run["notes"])
    )
    if run["output"]:
        job.say("output:\n" + run["output"][-20_000:])
    job.result(
        run={
            **{k: v for k, v in run.items() if k not in ("started_at", "ended_at")},
            "started_at": run["started_at"].isoformat(),
            "ended_at": run["ended_at"].isoformat(),
        }
    )
    if run["exit_code"] != 0:
        raise TaskFailed(f"the job exited with code {run['exit_code']}; its output is above")


def visible_job(session: Session, principal: Principal, job_id: int, write: bool) -> PluginObject:
    """The cron job if the caller may see (or change) its account; 404 otherwise."""
    get = get_writable if write else get_visible
    obj = get(session, principal, PluginObject, job_id)
    if obj.kind != KIND:
        raise NotFound()
    return obj
