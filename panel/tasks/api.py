"""``/api/v1/tasks``, a site's backups, restore, clone, migrate and backup schedule."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from sqlalchemy import select

from panel.accounts.models import Account, Role
from panel.core.errors import NotFound
from panel.core.http import READ_ERRORS, WRITE_ERRORS, PrincipalDep, SessionDep
from panel.core.objects import get_visible, get_writable
from panel.core.pagination import Page, paginate
from panel.databases.models import Database
from panel.sites.models import Site
from panel.tasks import service
from panel.tasks.models import Backup, BackupSchedule, Task, TaskKind, TaskStatus
from panel.tasks.schemas import (
    AccountMigrateIn,
    BackupIn,
    BackupOut,
    CloneIn,
    MigrateIn,
    RestoreBackupIn,
    RestoreIn,
    ScheduleIn,
    ScheduleOut,
    TaskOut,
)

router = APIRouter(tags=["tasks"])


def _accepted(session: SessionDep, principal: PrincipalDep, task: Task, obj: Any) -> TaskOut:
    service.record_started(session, principal, task, obj)
    session.commit()
    return TaskOut.model_validate(task)


@router.get("/tasks", response_model=Page[TaskOut], responses=READ_ERRORS)
def list_tasks(
    session: SessionDep,
    principal: PrincipalDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    account_id: int | None = None,
    site_id: int | None = None,
    status: TaskStatus | None = None,
    kind: TaskKind | None = None,
) -> Any:
    """Tasks of the accounts you can see, newest first."""
    stmt = principal.fence(select(Task), Task.account_id)
    if not principal.is_staff:
        stmt = stmt.where(Task.account_id.is_not(None))
    if account_id is not None:
        stmt = stmt.where(Task.account_id == account_id)
    if site_id is not None:
        stmt = stmt.where(Task.site_id == site_id)
    if status is not None:
        stmt = stmt.where(Task.status == status)
    if kind is not None:
        stmt = stmt.where(Task.kind == kind)
    rows, nxt = paginate(session, stmt, Task.id, cursor, limit, newest_first=True)
    return Page[TaskOut](items=[TaskOut.model_validate(t) for t in rows], next_cursor=nxt)


@router.get("/tasks/{task_id}", response_model=TaskOut, responses=READ_ERRORS)
def get_task(task_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """One task: status, progress (0-100) and its log."""
    task = session.get(Task, task_id)
    if task is None:
        raise NotFound()
    if task.account_id is None:
        if not principal.is_staff:  # a provider's own task: as if it did not exist
            raise NotFound()
    else:
        principal.require(task.account_id, Role.viewer)
    return TaskOut.model_validate(task)


@router.get("/sites/{site_id}/backups", response_model=Page[BackupOut], responses=READ_ERRORS)
def list_backups(site_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """The site's backups in the backup store, newest first, with size and date."""
    site = get_visible(session, principal, Site, site_id)
    rows = session.scalars(
        select(Backup).where(Backup.site_id == site.id).order_by(Backup.id.desc())
    ).all()
    return Page[BackupOut](items=[BackupOut.model_validate(b) for b in rows], next_cursor=None)


@router.get("/backups", response_model=Page[BackupOut], responses=READ_ERRORS)
def list_account_backups(
    session: SessionDep,
    principal: PrincipalDep,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    account_id: int | None = None,
    deleted: Annotated[
        bool | None, Query(description="true: only backups of deleted sites")
    ] = None,
) -> Any:
    """Backups of the accounts you can see, newest first, including those of deleted
    sites (``site_id`` null): they stay in the store until retention or staff remove them."""
    stmt = principal.fence(select(Backup), Backup.account_id)
    if account_id is not None:
        stmt = stmt.where(Backup.account_id == account_id)
    if deleted is not None:
        stmt = stmt.where(Backup.site_id.is_(None) if deleted else Backup.site_id.is_not(None))
    rows, nxt = paginate(session, stmt, Backup.id, cursor, limit, newest_first=True)
    return Page[BackupOut](items=[BackupOut.model_validate(b) for b in rows], next_cursor=nxt)


@router.post(
    "/backups/{backup_id}/restore",
    status_code=202,
    response_model=TaskOut,
    responses=WRITE_ERRORS,
)
def restore_backup(
    backup_id: int,
    session: SessionDep,
    principal: PrincipalDep,
    body: RestoreBackupIn | None = None,
) -> Any:
    """Restore any backup of the account; one of a deleted site comes back as a new site
    (its old name unless ``domain`` says another) with its databases."""
    backup = get_writable(session, principal, Backup, backup_id)
    task = service.start_restore_backup(session, principal, backup, body.domain if body else None)
    return _accepted(session, principal, task, backup)


@router.post(
    "/accounts/{account_id}/migrate",
    status_code=202,
    response_model=TaskOut,
    responses=WRITE_ERRORS,
)
def migrate_account(
    account_id: int, body: AccountMigrateIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Staff: move every site of the account to one web host and/or every database to one
    db host, each as a site or database move would (the task's log says which moved)."""
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound()
    principal.require(account.id, Role.viewer)  # another account's: 404, as everywhere
    principal.require_staff()
    task = service.start_migrate_account(
        session, principal, account, body.web_host_id, body.db_host_id
    )
    return _accepted(session, principal, task, account)


@router.post(
    "/sites/{site_id}/backups", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS
)
def backup_site(
    site_id: int, session: SessionDep, principal: PrincipalDep, body: BackupIn | None = None
) -> Any:
    """Back the site up now (its files and databases): answers the task to follow."""
    site = get_writable(session, principal, Site, site_id)
    task = service.start_backup(session, principal, site, body.databases if body else None)
    return _accepted(session, principal, task, site)


@router.post(
    "/sites/{site_id}/restore", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS
)
def restore_site(
    site_id: int, body: RestoreIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Restore a backup in place (the replaced files are archived on the host), or with
    ``domain`` as a new site of the same account with copies of the databases."""
    site = get_writable(session, principal, Site, site_id)
    task = service.start_restore(session, principal, site, body.backup_id, body.domain)
    return _accepted(session, principal, task, site)


@router.post(
    "/sites/{site_id}/clone", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS
)
def clone_site(site_id: int, body: CloneIn, session: SessionDep, principal: PrincipalDep) -> Any:
    """Copy the site to another name of the same account: files, databases under new
    names with new users (same passwords), its own vhost.  The task's ``params`` show the
    new site and the database names."""
    site = get_writable(session, principal, Site, site_id)
    task = service.start_clone(session, principal, site, body)
    return _accepted(session, principal, task, site)


@router.post(
    "/sites/{site_id}/migrate", status_code=202, response_model=TaskOut, responses=WRITE_ERRORS
)
def migrate_site(
    site_id: int, body: MigrateIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Staff: move the site to another web host; it keeps serving from the old one
    unless the new one answers for it."""
    site = get_writable(session, principal, Site, site_id)
    task = service.start_migrate(session, principal, site, body.host_id)
    return _accepted(session, principal, task, site)


@router.post(
    "/databases/{database_id}/migrate",
    status_code=202,
    response_model=TaskOut,
    responses=WRITE_ERRORS,
)
def migrate_database(
    database_id: int, body: MigrateIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Staff: move a database (and its users) to another db host."""
    database = get_writable(session, principal, Database, database_id)
    task = service.start_migrate_database(session, principal, database, body.host_id)
    return _accepted(session, principal, task, database)


@router.get("/sites/{site_id}/backup-schedule", response_model=ScheduleOut, responses=READ_ERRORS)
def get_schedule(site_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """The site's scheduled backups (404 when it has none)."""
    site = get_visible(session, principal, Site, site_id)
    row = session.get(BackupSchedule, site.id)
    if row is None:
        raise NotFound()
    return ScheduleOut.model_validate(row)


@router.put("/sites/{site_id}/backup-schedule", response_model=ScheduleOut, responses=WRITE_ERRORS)
def put_schedule(
    site_id: int, body: ScheduleIn, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Back the site up daily or weekly at an hour (UTC)."""
    site = get_writable(session, principal, Site, site_id)
    row = service.set_schedule(session, principal, site, body)
    session.commit()
    return ScheduleOut.model_validate(row)


@router.delete("/sites/{site_id}/backup-schedule", status_code=204, responses=WRITE_ERRORS)
def delete_schedule(site_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """No more scheduled backups (the backups made stay)."""
    site = get_writable(session, principal, Site, site_id)
    if service.clear_schedule(session, principal, site):
        session.commit()
    return Response(status_code=204)
