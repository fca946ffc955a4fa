"""Accounts, users, memberships and API tokens."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panel.core.db import Base, Timestamped, Versioned, utcnow


class AccountStatus(enum.StrEnum):
    active = "active"
    suspended = "suspended"
    closed = "closed"


class Role(enum.StrEnum):
    """What a member may do in an account: viewer reads, manager writes, owner also manages
    memberships."""

    viewer = "viewer"
    manager = "manager"
    owner = "owner"


ROLE_RANK = {Role.viewer: 1, Role.manager: 2, Role.owner: 3}


class Account(Base, Timestamped, Versioned):
    """A member organization; its slug is also the base of its unix user on hosts."""

    __tablename__ = "accounts"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(31), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    status: Mapped[str] = mapped_column(String(16), default=AccountStatus.active, index=True)
    quotas: Mapped[dict[str, Any]] = mapped_column(default=dict)


class User(Base, Timestamped, Versioned):
    """A person who logs in; staff users administer the whole provider."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    password_hash: Mapped[str | None] = mapped_column(String(200), default=None)
    is_staff: Mapped[bool] = mapped_column(default=False)
    is_active: Mapped[bool] = mapped_column(default=True)


class Membership(Base, Timestamped, Versioned):
    """A user's role in one account."""

    __tablename__ = "memberships"
    __table_args__ = (UniqueConstraint("account_id", "user_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))

    user: Mapped[User] = relationship(lazy="raise")
    account: Mapped[Account] = relationship(lazy="raise")


class ApiToken(Base):
    """A bearer token: only its SHA-256 is stored (tokens are random, so no slow hash is
    needed), it is shown once, and its scopes narrow what its user may do."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scopes: Mapped[list[str]] = mapped_column(default=list)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    last_used_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(default=None)

    user: Mapped[User] = relationship(lazy="raise")
