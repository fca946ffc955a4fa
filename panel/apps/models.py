"""Platforms (an application's codebase at one version, built once by the panel) and the
application installed on each site."""

from __future__ import annotations

import datetime as dt
import enum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Timestamped


class AppStatus(enum.StrEnum):
    """Where a site's application stands; the tasks move it (``panel.apps.tasks``)."""

    installing = "installing"
    active = "active"
    updating = "updating"
    failed = "failed"  # the last install or update failed: status_reason says why


class Platform(Base, Timestamped):
    """A build of one application at one version; never changes once made (a new build is
    a new platform), so a site on it serves the same code on every host."""

    __tablename__ = "platforms"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    app: Mapped[str] = mapped_column(String(32), index=True)
    version: Mapped[str] = mapped_column(String(40))
    sha256: Mapped[str] = mapped_column(String(64))
    size: Mapped[int] = mapped_column(default=0)
    source: Mapped[str] = mapped_column(String(500))  # what it was built from, for people
    # Members may put new sites on it; staff turn it off to retire a platform.
    enabled: Mapped[bool] = mapped_column(default=True)
    # Automatic updates: in each maintenance window (UTC; every day, or one weekday) the
    # sites on this platform move to the newest platform of the app, if it is newer.
    auto_update: Mapped[bool] = mapped_column(default=False)
    window_weekday: Mapped[int | None] = mapped_column(default=None)  # 0 is Monday
    window_hour: Mapped[int] = mapped_column(default=3)
    window_hours: Mapped[int] = mapped_column(default=2)


class SiteApp(Base, Timestamped):
    """The application a site runs, on which platform; its database, if the app has one
    (DokuWiki keeps its pages in files), is one of the account's, made for it at install."""

    __tablename__ = "site_apps"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), unique=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    platform_id: Mapped[int] = mapped_column(ForeignKey("platforms.id"), index=True)
    app: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(200))
    admin_user: Mapped[str] = mapped_column(String(60))
    admin_email: Mapped[str] = mapped_column(String(254))
    database_id: Mapped[int | None] = mapped_column(
        ForeignKey("databases.id", ondelete="SET NULL"), default=None
    )
    status: Mapped[str] = mapped_column(String(16), default=AppStatus.installing)
    status_reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    # The admin password's hash in the application's own format, until the install task
    # has set it (then cleared): the password itself was shown once and never stored.
    admin_hash: Mapped[str | None] = mapped_column(String(300), default=None)
    version: Mapped[str | None] = mapped_column(String(40), default=None)  # as the app says
    installed_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    # The platform an update to was rolled back from: automatic updates do not try the
    # same build on this site again (a person may, by hand); cleared by a good update.
    refused_platform_id: Mapped[int | None] = mapped_column(
        ForeignKey("platforms.id", ondelete="SET NULL"), default=None
    )


class SiteInventory(Base):
    """What a site's files say it runs, as the last scan read them (``panel.apps.inventory``):
    sites installed by hand as well as those on a platform."""

    __tablename__ = "app_inventory"

    site_id: Mapped[int] = mapped_column(
        ForeignKey("sites.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    app: Mapped[str | None] = mapped_column(String(32), index=True)  # None: nothing found
    version: Mapped[str | None] = mapped_column(String(40))
    scanned_at: Mapped[dt.datetime] = mapped_column()
