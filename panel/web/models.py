"""Browser sessions, per-user page preferences (language, TOTP) and failed-login records."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, utcnow


class WebSession(Base):
    """A logged-in browser: only the SHA-256 of its cookie is stored, so a database read
    does not hand out sessions; logout deletes the row."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    csrf: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column()
    # False while a TOTP code is still owed after the password.
    verified: Mapped[bool] = mapped_column(default=True)
    # Staff looking at one account through a member's eyes, read-only.
    view_as_account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), default=None
    )


class WebPrefs(Base):
    """What a user chose for the pages: language, and TOTP two-factor authentication."""

    __tablename__ = "web_prefs"

    user_id: Mapped[int] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), primary_key=True
    )
    lang: Mapped[str | None] = mapped_column(String(8), default=None)
    totp_secret: Mapped[str | None] = mapped_column(String(64), default=None)
    totp_enabled: Mapped[bool] = mapped_column(default=False)


class LoginFailure(Base):
    """One failed login, by email and by client address: repeated failures slow logins down."""

    __tablename__ = "web_login_failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(300), index=True)
    at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)
