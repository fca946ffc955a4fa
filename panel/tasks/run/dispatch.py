"""Run one lifecycle task to its end: claim it, dispatch it by kind, record the outcome.

Apart from ``job`` (what every kind shares), so that the kinds' modules import ``Job``
and this module imports them, with no cycle between the two.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence

from panel.apps.inventory import do_scan as do_app_scan
from panel.apps.tasks import do_install as do_app_install
from panel.apps.tasks import do_update as do_app_update
from panel.core.db import Database, utcnow
from panel.core.settings import Settings
from panel.cron.service import do_run as do_cron_run
from panel.dns.dkim_tasks import do_drop as do_dkim_drop
from panel.dns.dkim_tasks import do_key as do_dkim_key
from panel.tasks.models import Task, TaskKind, TaskStatus
from panel.tasks.run.backup import do_backup
from panel.tasks.run.cleanup import do_cleanup
from panel.tasks.run.clone import do_clone
from panel.tasks.run.job import Job, TaskFailed, claim
from panel.tasks.run.migrate import do_migrate, do_migrate_account, do_migrate_database
from panel.tasks.run.restore import do_restore
from provisioners.api import Provisioner, TransportError

log = logging.getLogger("konbit.tasks")


def run_task(
    db: Database, settings: Settings, task_id: int, plugins: Sequence[Provisioner]
) -> str | None:
    """Run one task to its end; returns its final status (None: not ours to run)."""
    if not claim(db, task_id):
        return None
    job = Job(db, settings, task_id, plugins)
    with db.session() as session:
        kind = session.get_one(Task, task_id).kind
    status, error = TaskStatus.succeeded, None
    try:
        runners()[kind](job)
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


def runners() -> dict[str, Callable[[Job], None]]:
    """The function that runs each kind of task."""
    return {
        TaskKind.backup: do_backup,
        TaskKind.restore: do_restore,
        TaskKind.clone: do_clone,
        TaskKind.migrate: do_migrate,
        TaskKind.migrate_database: do_migrate_database,
        TaskKind.migrate_account: do_migrate_account,
        TaskKind.cleanup: do_cleanup,
        TaskKind.cron_run: do_cron_run,
        TaskKind.app_install: do_app_install,
        TaskKind.app_update: do_app_update,
        TaskKind.app_scan: do_app_scan,
        TaskKind.dkim_key: do_dkim_key,
        TaskKind.dkim_drop: do_dkim_drop,
    }
