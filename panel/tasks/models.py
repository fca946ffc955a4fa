"""Imperative jobs (backup, restore, clone, migrate), the backups they make, schedules."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, JSONType, Timestamped, utcnow


class TaskStatus(enum.StrEnum):
    queued = "queued"
    running = "running"
    succeeded = "succeeded"
    failed = "failed"


class TaskKind(enum.StrEnum):
    backup = "backup"
    restore = "restore"
    clone = "clone"
    migrate = "migrate"
    migrate_database = "migrate-database"
    migrate_account = "migrate-account"
    cleanup = "clean-up"  # what a failed move left on a host that did not answer
    cron_run = "cron-run"  # a member's cron job run once now (panel.cron)
    app_install = "app-install"  # an application installed on a site (panel.apps)
    app_update = "app-update"  # sites moved to a newer platform, rolled back on failure
    app_scan = "app-scan"  # every web host read for which application each site runs
    dkim_key = "dkim-key"  # a domain's new DKIM key: made on its mail host, published, used
    dkim_drop = "dkim-drop"  # retired DKIM keys out of the zone and off the mail host


class Task(Base):
    """One imperative job (backup, restore, clone, migrate) and how far it got."""

    __tablename__ = "tasks"
    __table_args__ = (Index("ix_tasks_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"), index=True)
    kind: Mapped[str] = mapped_column(String(32))
    params: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default=TaskStatus.queued, index=True)
    progress: Mapped[int] = mapped_column(default=0)
    log: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    started_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # What the task works on (kept when the object goes: a task's history stays readable).
    site_id: Mapped[int | None] = mapped_column(default=None, index=True)
    database_id: Mapped[int | None] = mapped_column(default=None)
    user_id: Mapped[int | None] = mapped_column(default=None)  # who asked (None: schedule)
    error: Mapped[str | None] = mapped_column(String(2000), default=None)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    # A worker's claim: a task "running" past it was cut short and may be taken again.
    claimed_until: Mapped[dt.datetime | None] = mapped_column(default=None)


class Backup(Base):
    """One backup of one site in the backup store: a directory on a backup host with the
    site's files (``files.tar.gz``), each database's dump and a ``manifest.json``."""

    __tablename__ = "backups"
    __table_args__ = (Index("ix_backups_site_id_id", "site_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL"), default=None
    )
    domain: Mapped[str] = mapped_column(String(253))  # the site's name when it was taken
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)  # backup host
    path: Mapped[str] = mapped_column(String(500))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    files_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # [{"name", "engine", "file", "bytes"}]: the dumps in the backup.
    databases: Mapped[list[dict[str, Any]]] = mapped_column(JSONType, default=list)
    # The site's settings when it was taken (php, aliases, https): a deleted site comes back
    # as it was.
    site: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    task_id: Mapped[int | None] = mapped_column(default=None)
    scheduled: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class BackupFrequency(enum.StrEnum):
    daily = "daily"
    weekly = "weekly"


class BackupSchedule(Base, Timestamped):
    """A site's scheduled backups: daily or weekly, at an hour (UTC) the member picks."""

    __tablename__ = "backup_schedules"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    frequency: Mapped[str] = mapped_column(String(16), default=BackupFrequency.daily)
    hour: Mapped[int] = mapped_column(default=3)
    weekday: Mapped[int] = mapped_column(default=0)  # weekly: 0 is Monday
    next_run_at: Mapped[dt.datetime] = mapped_column(index=True)
    last_task_id: Mapped[int | None] = mapped_column(default=None)
