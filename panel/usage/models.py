"""Usage samples."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Date, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, utcnow


class UsageSample(Base):
    """One measurement of one metric of one object (disk bytes, mail bytes, HTTP bytes...)."""

    __tablename__ = "usage_samples"
    __table_args__ = (
        Index("ix_usage_samples_account_metric_time", "account_id", "metric", "time"),
        Index("ix_usage_samples_metric_time", "metric", "time"),  # staff totals per period
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column()
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[dt.datetime] = mapped_column(default=utcnow)


class HostUsage(Base):
    """Where the usage collection of one host stands: the plugins' cursors (log offsets),
    written in the same transaction as the samples they produced, and its last failure."""

    __tablename__ = "host_usage"

    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    cursors: Mapped[dict[str, Any]] = mapped_column(default=dict)
    collected_at: Mapped[dt.datetime | None] = mapped_column()
    seconds: Mapped[float | None] = mapped_column()
    error: Mapped[str | None] = mapped_column(Text)
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    retry_at: Mapped[dt.datetime | None] = mapped_column()


class AccountUsage(Base):
    """An account's storage against its disk quota, as of the last collection."""

    __tablename__ = "account_usage"

    account_id: Mapped[int] = mapped_column(
        ForeignKey("accounts.id", ondelete="CASCADE"), primary_key=True
    )
    disk_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # host id -> bytes the account holds there (home, mail, databases, list archives):
    # each host's collection replaces its own part, and disk_bytes is their sum.
    parts: Mapped[dict[str, Any]] = mapped_column(default=dict)
    over_quota_since: Mapped[dt.datetime | None] = mapped_column()
    suspended_at: Mapped[dt.datetime | None] = mapped_column()  # suspended for the quota
    updated_at: Mapped[dt.datetime] = mapped_column(default=utcnow)


class UsageDaily(Base):
    """One finished UTC day of usage, rolled up from the samples so a year is 365 rows per
    series, not 8,760. ``object_type`` "*" (object 0) holds the account's total per
    collection: ``peak`` is then the account's peak, not a sum of its objects' peaks."""

    __tablename__ = "usage_daily"

    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), primary_key=True)
    metric: Mapped[str] = mapped_column(String(32), primary_key=True)
    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(32), primary_key=True)
    object_id: Mapped[int] = mapped_column(primary_key=True)
    samples: Mapped[int] = mapped_column()
    total: Mapped[int] = mapped_column(BigInteger)
    peak: Mapped[int] = mapped_column(BigInteger)


class UsageRollup(Base):
    """Days already rolled up into ``usage_daily``."""

    __tablename__ = "usage_rollups"

    day: Mapped[dt.date] = mapped_column(Date, primary_key=True)
    done_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
