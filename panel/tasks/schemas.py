"""Task, backup and schedule API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from panel.core.validation import DomainName
from panel.tasks.models import BackupFrequency

DbNames = list[str]


class TaskOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int | None
    kind: str
    site_id: int | None
    database_id: int | None
    status: str
    progress: int = Field(description="0 to 100")
    error: str | None
    result: dict[str, Any]
    params: dict[str, Any]
    log: str
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None


class BackupDatabaseOut(BaseModel):
    name: str
    engine: str
    bytes: int


class BackupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    site_id: int | None
    domain: str
    host_id: int
    size_bytes: int
    files_bytes: int
    databases: list[BackupDatabaseOut]
    scheduled: bool
    created_at: dt.datetime


class BackupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    databases: DbNames | None = Field(
        default=None,
        max_length=50,
        description="The account's databases to include; default: all of them",
    )


class RestoreIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    backup_id: int = Field(ge=1)
    domain: DomainName | None = Field(
        default=None,
        description="Restore as a new site with this name (databases renamed); "
        "default: in place, the replaced files archived on the host",
    )


class CloneIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: DomainName
    databases: DbNames | None = Field(
        default=None, max_length=50, description="Databases to copy; default: all the account's"
    )
    database_names: dict[str, str] | None = Field(
        default=None, description="Old name -> new name; default: the old name with a number"
    )


class RestoreBackupIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    domain: DomainName | None = Field(
        default=None,
        description="The new site's name; default: the backup's site's name (its site "
        "deleted), or in place (its site alive)",
    )


class AccountMigrateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    web_host_id: int | None = Field(default=None, ge=1, description="Move every site here")
    db_host_id: int | None = Field(default=None, ge=1, description="Move every database here")


class MigrateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    host_id: int = Field(ge=1, description="The host to move to")


class ScheduleIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    frequency: BackupFrequency
    hour: int = Field(default=3, ge=0, le=23, description="UTC")
    weekday: int = Field(default=0, ge=0, le=6, description="Weekly: 0 is Monday")


class ScheduleOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    site_id: int
    frequency: str
    hour: int
    weekday: int
    next_run_at: dt.datetime
    last_task_id: int | None
