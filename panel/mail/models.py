"""Mailboxes and mail aliases."""

from __future__ import annotations

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Reconciled


class Mailbox(Base, Reconciled):
    """A mailbox; its password is kept only as a hash dovecot can verify."""

    __tablename__ = "mailboxes"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    password_hash: Mapped[str] = mapped_column(String(300))
    quota_mb: Mapped[int] = mapped_column(default=1024)
    enabled: Mapped[bool] = mapped_column(default=True)


class MailAlias(Base, Reconciled):
    """An address that forwards to one or more others (``@domain`` is the catch-all)."""

    __tablename__ = "mail_aliases"

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    address: Mapped[str] = mapped_column(String(320), unique=True)
    destinations: Mapped[list[str]] = mapped_column(default=list)
