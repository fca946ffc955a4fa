"""Mailing lists."""

from __future__ import annotations

import enum

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Reconciled


class SubscriptionPolicy(enum.StrEnum):
    open = "open"
    confirm = "confirm"
    moderate = "moderate"


class MailingList(Base, Reconciled):
    """A mailing list run by the list manager of a lists host."""

    __tablename__ = "mailing_lists"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    owners: Mapped[list[str]] = mapped_column(default=list)
    policy: Mapped[str] = mapped_column(String(16), default=SubscriptionPolicy.confirm)
