"""Audit events."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, utcnow


class AuditEvent(Base):
    """Who did what to which object, when and from where; secrets never stored."""

    __tablename__ = "audit_events"
    __table_args__ = (Index("ix_audit_events_account_id_id", "account_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
    actor_user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    actor_email: Mapped[str | None] = mapped_column(String(254))
    token_id: Mapped[int | None] = mapped_column(ForeignKey("api_tokens.id", ondelete="SET NULL"))
    client_addr: Mapped[str | None] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[int | None] = mapped_column()
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id"))
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict)
