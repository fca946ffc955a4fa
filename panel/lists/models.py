"""Mailing lists and their rosters."""

from __future__ import annotations

import enum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Reconciled, Timestamped


class SubscriptionPolicy(enum.StrEnum):
    open = "open"
    confirm = "confirm"
    moderate = "moderate"


class MemberRole(enum.StrEnum):
    member = "member"
    owner = "owner"
    moderator = "moderator"


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
    # Only the settings a member changed (see panel.lists.schemas.ListSettings for the rest).
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)


class ListMember(Base, Timestamped):
    """One address on a list's roster in one role.  Not reconciled on its own: a change
    marks its list pending, and the list's status says whether the host has the roster."""

    __tablename__ = "list_members"
    __table_args__ = (UniqueConstraint("list_id", "email", "role"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    list_id: Mapped[int] = mapped_column(
        ForeignKey("mailing_lists.id", ondelete="CASCADE"), index=True
    )
    email: Mapped[str] = mapped_column(String(320))
    role: Mapped[str] = mapped_column(String(16), default=MemberRole.member)
