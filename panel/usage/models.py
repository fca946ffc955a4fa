"""Usage samples."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, utcnow


class UsageSample(Base):
    """One measurement of one metric of one object (disk bytes, mail bytes, HTTP bytes...)."""

    __tablename__ = "usage_samples"
    __table_args__ = (
        Index("ix_usage_samples_account_metric_time", "account_id", "metric", "time"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column()
    metric: Mapped[str] = mapped_column(String(32))
    value: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[dt.datetime] = mapped_column(default=utcnow)
