"""Lifecycle tasks in the panel: a site's backups and tasks (back up now, restore, backup
schedule, clone, move to another web host), one task's page, an account's tasks with the
backups of its deleted sites and the staff's "move the whole account".  Every action goes
through ``panel.tasks.service`` and is recorded as the API's (``panel.tasks.api``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import or_, select

from panel.accounts.models import Account, Role
from panel.core.errors import Invalid, NotFound, ProblemError
from panel.core.objects import get_visible, get_writable
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.sites.models import Site
from panel.tasks import service
from panel.tasks.models import Backup, BackupSchedule, Task, TaskStatus
from panel.tasks.schemas import (
    AccountMigrateIn,
    CloneIn,
    MigrateIn,
    RestoreBackupIn,
    RestoreIn,
    ScheduleIn,
)
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    errors_of,
    page_of,
    redirect,
    render,
    render_flashed,
    text,
)
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# The fields of each form of the pages: an error about another field is shown above it.
FIELDS: dict[str, tuple[str, ...]] = {
    "backup": (),
    "schedule": ("frequency", "hour", "weekday"),
    "clone": ("domain",),
    "migrate": ("host_id",),
    "restore": ("domain",),
    "move": ("web_host_id", "db_host_id"),
}

WEEKDAYS = (
    _("Monday"),
    _("Tuesday"),
    _("Wednesday"),
    _("Thursday"),
    _("Friday"),
    _("Saturday"),
    _("Sunday"),
)
# Words that reach the templates as data: task kinds and statuses, schedule frequencies.
WORDS = (
    _("backup"),
    _("restore"),
    _("clone"),
    _("migrate"),
    _("migrate-database"),
    _("migrate-account"),
    _("clean-up"),
    _("queued"),
    _("running"),
    _("succeeded"),
    _("failed"),
    _("daily"),
    _("weekly"),
)
UNDER_WAY = (TaskStatus.queued, TaskStatus.running)

T = TypeVar("T")
Outcome = Task | tuple[int, FormErrors]


def start(web: Web, form: str, write: Callable[[], T]) -> T | tuple[int, FormErrors]:
    """One write through the service: its result, or (status, the form's errors) with the
    session rolled back.  A refusal that is not about the form (403, 404) is a page."""
    try:
        return write()
    except ValidationError as exc:
        web.db.rollback()
        return 422, _only(web, errors_of(web.tr, exc), form)
    except ProblemError as exc:
        web.db.rollback()
        if exc.status in (403, 404):
            raise
        return exc.status, _only(web, errors_of(web.tr, exc), form)


def _only(web: Web, errors: FormErrors, form: str) -> FormErrors:
    """Errors about fields the form does not show go above the form, with the field's name."""
    for name in [n for n in errors.fields if n not in FIELDS[form]]:
        errors.general.append(
            web._("%(field)s: %(reason)s") % {"field": name, "reason": errors.fields.pop(name)}
        )
    return errors


def accepted(web: Web, task: Task, obj: Any) -> None:
    """The tail of every start, as the API's ``_accepted``: an audit event, the commit."""
    service.record_started(web.db, web.p, task, obj)
    web.db.commit()


def started(web: Web, task: Task) -> str:
    """The flash message of a started task."""
    what = {
        "backup": _("Backup started: task %(id)s."),
        "restore": _("Restore started: task %(id)s."),
        "clone": _("Clone started: task %(id)s."),
        "migrate": _("Move started: task %(id)s."),
        "migrate-account": _("Move of the account started: task %(id)s."),
    }.get(task.kind, _("Task %(id)s started."))
    return web._(what) % {"id": task.id}


def _int(raw: str) -> int | str | None:
    """A select's value as a number when it is one (pydantic says what is wrong if not)."""
    if not raw:
        return None
    return int(raw) if raw.isdigit() else raw


# -- a site's backups and tasks --------------------------------------------------------------


def web_hosts(web: Web, but: int | None = None) -> list[Host]:
    return [h for h in hosts.hosts_with_role(web.db, "web") if h.id != but]


def _schedule_values(row: BackupSchedule | None) -> dict[str, str]:
    if row is None:
        return {"frequency": "off", "hour": "3", "weekday": "0"}
    return {"frequency": row.frequency, "hour": str(row.hour), "weekday": str(row.weekday)}


def _lifecycle(
    web: Web,
    site: Site,
    status: int = 200,
    errors: dict[str, FormErrors] | None = None,
    values: dict[str, Any] | None = None,
) -> Response:
    account = account_of(web, site.account_id)
    backups = page_of(
        web,
        select(Backup).where(Backup.site_id == site.id),
        Backup.id,
        newest_first=True,
        size=20,
        prefix="b",
    )
    # Its own tasks, and those started from it (a clone or restore's task is the new site's).
    tasks = page_of(
        web,
        select(Task).where(
            Task.account_id == site.account_id,
            or_(Task.site_id == site.id, Task.params["site_id"].as_integer() == site.id),
        ),
        Task.id,
        newest_first=True,
        size=20,
        prefix="t",
    )
    schedule = web.db.get(BackupSchedule, site.id)
    shown = {"clone_domain": "", **_schedule_values(schedule), **(values or {})}
    return render_flashed(
        web,
        "panel/site_lifecycle.html",
        status,
        account=account,
        site=site,
        backups=backups,
        tasks=tasks,
        schedule=schedule,
        values=shown,
        errors={**{k: FormErrors() for k in FIELDS}, **(errors or {})},
        writable=web.can_write(account.id) and site.status != "deleting",
        staff=web.p.is_staff,
        hosts=web_hosts(web, site.host_id) if web.p.is_staff else [],
        weekdays=WEEKDAYS,
    )


@router.get("/sites/{site_id}/lifecycle")
def site_lifecycle(site_id: int, web: WebDep) -> Response:
    return _lifecycle(web, get_visible(web.db, web.p, Site, site_id))


def _done(
    web: Web, site: Site, form: str, outcome: Outcome, values: dict[str, Any] | None = None
) -> Response:
    """After a start: back to the page with its message, or the page with the form's errors."""
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _lifecycle(web, site, status, {form: errors}, values)
    return redirect(f"/sites/{site.id}/lifecycle", started(web, outcome))


@router.post("/sites/{site_id}/backups")
def backup_now(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    site = get_writable(web.db, web.p, Site, site_id)

    def write() -> Task:
        task = service.start_backup(web.db, web.p, site)
        accepted(web, task, site)
        return task

    return _done(web, site, "backup", start(web, "backup", write))


@router.post("/sites/{site_id}/backup-schedule")
def save_schedule(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Off (the schedule goes; the backups made stay), or daily or weekly at an hour (UTC)."""
    site = get_writable(web.db, web.p, Site, site_id)
    values = {
        "frequency": text(form, "frequency") or "off",
        "hour": text(form, "hour"),
        "weekday": text(form, "weekday"),
    }
    if values["frequency"] == "off":
        if service.clear_schedule(web.db, web.p, site):
            web.db.commit()
        return redirect(f"/sites/{site.id}/lifecycle", web._("Scheduled backups are off."))

    def write() -> BackupSchedule:
        body = ScheduleIn.model_validate(
            {
                "frequency": values["frequency"],
                "hour": _int(values["hour"]) or 0,
                "weekday": _int(values["weekday"]) or 0,
            }
        )
        row = service.set_schedule(web.db, web.p, site, body)
        web.db.commit()
        return row

    saved = start(web, "schedule", write)
    if isinstance(saved, tuple):
        status, errors = saved
        return _lifecycle(web, site, status, {"schedule": errors}, values)
    return redirect(
        f"/sites/{site.id}/lifecycle",
        web._("Backups scheduled; the next one starts %(time)s (UTC).")
        % {"time": web.tr.datetime(saved.next_run_at)},
    )


@router.post("/sites/{site_id}/clone")
def clone_site(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    site = get_writable(web.db, web.p, Site, site_id)
    domain = text(form, "domain").lower()

    def write() -> Task:
        task = service.start_clone(web.db, web.p, site, CloneIn(domain=domain))
        accepted(web, task, site)
        return task

    return _done(web, site, "clone", start(web, "clone", write), {"clone_domain": domain})


@router.post("/sites/{site_id}/migrate")
def migrate_site(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Staff: the site to another web host (a member is refused, as by the API)."""
    site = get_writable(web.db, web.p, Site, site_id)
    web.require_staff()
    host_id = _int(text(form, "host_id"))

    def write() -> Task:
        body = MigrateIn.model_validate({"host_id": host_id})
        task = service.start_migrate(web.db, web.p, site, body.host_id)
        accepted(web, task, site)
        return task

    return _done(web, site, "migrate", start(web, "migrate", write))


# -- restoring a backup ------------------------------------------------------------------------


def _restore_page(web: Web, backup: Backup, status: int = 200, **ctx: Any) -> Response:
    account = account_of(web, backup.account_id)
    site = web.db.get(Site, backup.site_id) if backup.site_id is not None else None
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"domain": ""})
    ctx.setdefault("in_place", False)
    return render(
        web,
        "panel/backup_restore.html",
        status,
        account=account,
        backup=backup,
        site=site,
        writable=web.can_write(account.id),
        **ctx,
    )


@router.get("/backups/{backup_id}/restore")
def confirm_restore(backup_id: int, web: WebDep) -> Response:
    """What a restore does, in place or as a new site, before doing it."""
    return _restore_page(web, get_visible(web.db, web.p, Backup, backup_id))


@router.post("/backups/{backup_id}/restore")
def restore_backup(backup_id: int, web: WebDep, form: CsrfForm) -> Response:
    """``mode=in-place`` (the site's current files and databases archived, then replaced),
    else as a new site named ``domain`` (a deleted site's: its old name by default)."""
    backup = get_writable(web.db, web.p, Backup, backup_id)
    in_place = form.get("mode") == "in-place" and backup.site_id is not None
    domain = "" if in_place else text(form, "domain").lower()
    values = {"domain": domain}

    def write() -> Task:
        if backup.site_id is None:
            body = RestoreBackupIn(domain=domain or None)
            task = service.start_restore_backup(web.db, web.p, backup, body.domain)
            accepted(web, task, backup)
            return task
        site = get_writable(web.db, web.p, Site, backup.site_id)
        if in_place:
            task = service.start_restore(web.db, web.p, site, backup.id, None)
        else:
            if not domain:  # as a new site, a name is needed
                raise Invalid("domain", "Field required")
            data = RestoreIn(backup_id=backup.id, domain=domain)
            task = service.start_restore(web.db, web.p, site, backup.id, data.domain)
        accepted(web, task, site)
        return task

    outcome = start(web, "restore", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _restore_page(web, backup, status, errors=errors, values=values, in_place=in_place)
    back = (
        f"/sites/{backup.site_id}/lifecycle"
        if backup.site_id is not None
        else f"/accounts/{backup.account_id}/tasks"
    )
    return redirect(back, started(web, outcome))


# -- one task ----------------------------------------------------------------------------------


def visible_task(web: Web, task_id: int) -> Task:
    """As the API's ``get_task``: the account's viewers see it; a task of no account is
    the staff's; anyone else: 404."""
    task = web.db.get(Task, task_id)
    if task is None:
        raise NotFound()
    if task.account_id is None:
        if not web.p.is_staff:
            raise NotFound()
    else:
        web.p.require(task.account_id, Role.viewer)
    return task


@router.get("/tasks/{task_id}")
def task_page(task_id: int, web: WebDep) -> Response:
    task = visible_task(web, task_id)
    account = web.db.get(Account, task.account_id) if task.account_id is not None else None
    # What it works on (a clone's or a restore's new site), and where it came from.
    site = web.db.get(Site, task.site_id) if task.site_id is not None else None
    source_id = task.params.get("site_id")
    source = (
        web.db.get(Site, source_id)
        if isinstance(source_id, int) and source_id != task.site_id
        else None
    )
    return render(
        web,
        "panel/task.html",
        task=task,
        account=account,
        site=site,
        source=source,
        under_way=task.status in UNDER_WAY,
        result=json.dumps(task.result, indent=2, sort_keys=True) if task.result else "",
    )


# -- an account's tasks ------------------------------------------------------------------------


def _account_tasks(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    tasks = page_of(
        web,
        select(Task).where(Task.account_id == account.id),
        Task.id,
        newest_first=True,
        prefix="t",
    )
    orphans = page_of(
        web,
        select(Backup).where(Backup.account_id == account.id, Backup.site_id.is_(None)),
        Backup.id,
        newest_first=True,
        size=20,
        prefix="b",
    )
    staff = web.p.is_staff
    site_ids = {t.site_id for t in tasks.rows if t.site_id is not None}
    domains: dict[int, str] = {
        site_id: domain
        for site_id, domain in web.db.execute(
            select(Site.id, Site.domain).where(Site.id.in_(site_ids))
        )
    }
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"web_host_id": "", "db_host_id": ""})
    return render_flashed(
        web,
        "panel/account_tasks.html",
        status,
        account=account,
        tasks=tasks,
        domains=domains,
        orphans=orphans,
        writable=web.can_write(account.id),
        staff=staff,
        web_hosts=web_hosts(web) if staff else [],
        db_hosts=hosts.hosts_with_role(web.db, "db") if staff else [],
        **ctx,
    )


@router.get("/accounts/{account_id}/tasks")
def account_tasks(account_id: int, web: WebDep) -> Response:
    return _account_tasks(web, account_of(web, account_id))


@router.post("/accounts/{account_id}/migrate")
def migrate_account(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Staff: every site of the account to one web host and/or every database to one db
    host (``service.start_migrate_account``)."""
    account = account_of(web, account_id)
    web.require_staff()
    values = {"web_host_id": text(form, "web_host_id"), "db_host_id": text(form, "db_host_id")}

    def write() -> Task:
        body = AccountMigrateIn.model_validate(
            {"web_host_id": _int(values["web_host_id"]), "db_host_id": _int(values["db_host_id"])}
        )
        task = service.start_migrate_account(
            web.db, web.p, account, body.web_host_id, body.db_host_id
        )
        accepted(web, task, account)
        return task

    outcome = start(web, "move", write)
    if isinstance(outcome, tuple):
        status, errors = outcome
        return _account_tasks(web, account, status, errors=errors, values=values)
    return redirect(f"/accounts/{account.id}/tasks", started(web, outcome))
