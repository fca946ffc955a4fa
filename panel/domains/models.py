"""Domains owned by accounts."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Reconciled


class Domain(Base, Reconciled):
    """A DNS name an account owns; its sites, mailboxes and lists live under it."""

    __tablename__ = "domains"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    name: Mapped[str] = mapped_column(String(253), unique=True)
