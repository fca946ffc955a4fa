"""What the applications API takes and returns."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from panel.apps.build import ArchiveSource, DebianSource
from panel.core.validation import ContactEmail, DisplayName

PLATFORM_NAME = r"^[a-z][a-z0-9.-]{1,62}$"  # a directory name on every web host
# An application's admin account name: letters, digits and a few marks, as both
# WordPress and MediaWiki accept it.
ADMIN_NAME = r"^[A-Za-z][A-Za-z0-9_.-]{2,59}$"


class DebianIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["debian"]
    package: Literal["wordpress", "mediawiki", "dokuwiki"] = Field(
        description="a Debian package of the application, fetched by apt on the panel"
    )


class ArchiveIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["archive"]
    path: str = Field(
        description="an archive on the panel machine (.tar.gz, .tar.xz, .tar, .zip)",
        max_length=500,
    )
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="its SHA-256, as published")

    @field_validator("path")
    @classmethod
    def _absolute(cls, value: str) -> str:
        if not value.startswith("/") or "\x00" in value or "/../" in f"{value}/":
            raise ValueError("must be an absolute path on the panel machine, without '..'")
        return value


class PlatformIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Annotated[str, StringConstraints(pattern=PLATFORM_NAME)] = Field(
        description="e.g. wordpress-6.1.9: a new build gets a new name"
    )
    source: DebianIn | ArchiveIn = Field(discriminator="type")

    def build_source(self) -> DebianSource | ArchiveSource:
        if isinstance(self.source, DebianIn):
            return DebianSource(package=self.source.package)
        return ArchiveSource(path=Path(self.source.path), sha256=self.source.sha256)


class PlatformPatch(BaseModel):
    """What staff change on a platform (its build never changes): whether new sites may
    use it, and its automatic updates' maintenance window (UTC)."""

    model_config = ConfigDict(extra="forbid")
    enabled: bool | None = None
    auto_update: bool | None = Field(
        default=None,
        description="in each window, move this platform's sites to the app's newest platform",
    )
    window_weekday: int | None = Field(
        default=None, ge=0, le=6, description="0 is Monday; null: every day"
    )
    window_hour: int | None = Field(default=None, ge=0, le=23, description="start, UTC")
    window_hours: int | None = Field(default=None, ge=1, le=12, description="its length")


class PlatformOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    name: str
    app: str
    version: str
    sha256: str
    size: int
    source: str
    enabled: bool
    auto_update: bool
    window_weekday: int | None
    window_hour: int
    window_hours: int
    sites: int = 0
    created_at: dt.datetime


class InstallIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    platform_id: int = Field(ge=1)
    title: DisplayName = Field(description="the site's or wiki's name")
    admin_user: Annotated[str, StringConstraints(pattern=ADMIN_NAME)] = "admin"
    admin_email: ContactEmail

    @field_validator("title")
    @classmethod
    def _plain(cls, value: str) -> str:
        if re.search(r"[<>\\{}]", value):
            raise ValueError("may not hold < > \\ { }")
        return value


class SiteAppOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    site_id: int
    account_id: int
    platform_id: int
    app: str
    title: str
    admin_user: str
    admin_email: str
    database_id: int | None
    status: str
    status_reason: str | None
    version: str | None
    installed_at: dt.datetime | None
    refused_platform_id: int | None = Field(
        description="the build an update was rolled back from (automatic updates skip it)"
    )


class InstalledOut(BaseModel):
    app: SiteAppOut
    task_id: int
    admin_password: str = Field(description="shown once: Konbit keeps only its hash")


class UpdateIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    target_id: int = Field(ge=1, description="the platform the sites move to")
    site_ids: list[int] | None = Field(default=None, max_length=10_000)
    batch: int = Field(default=10, ge=1, le=100, description="sites switched at once")
