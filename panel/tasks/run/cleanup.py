"""Leftovers of a failed move: what a new host got is dropped there, now or by a clean-up
task retried until that host answers."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select

from panel.accounts.models import Account
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser
from panel.sites.models import Site
from panel.tasks.models import Task, TaskKind
from panel.tasks.run.job import Job, TaskFailed, run
from provisioners.transport import Connection, TransportError

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
        files = job.files()
        live_roots = {
            files.document_root(slug, root)
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
        drop_all(job, conn, dbs, users)
        for path in paths:
            run(conn, files.remove_copy(path), check=True)
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


def drop_all(
    job: Job,
    conn: Connection,
    dbs: Sequence[tuple[str, str]],
    users: Sequence[tuple[str, str]],
) -> None:
    """Drop databases and users, each a (name, engine): one client run per engine."""
    for engine in sorted({e for _, e in [*dbs, *users]}):
        names = [n for n, e in dbs if e == engine]
        logins = [n for n, e in users if e == engine]
        run(conn, job.engine(engine).drop(names, logins), check=True)
