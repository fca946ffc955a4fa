"""Browser sessions: a random cookie whose SHA-256 names a server-side row; CSRF tokens;
failed-login slow-down; TOTP."""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from functools import cache

import pyotp
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from panel.accounts.models import Account, Membership, Role, User
from panel.core.auth import Principal, hash_password, verify_password
from panel.core.db import utcnow
from panel.web.models import LoginFailure, WebPrefs, WebSession

COOKIE = "konbit_session"
LANG_COOKIE = "konbit_lang"
LOGIN_CSRF_COOKIE = "konbit_login_csrf"
SESSION_IDLE = dt.timedelta(hours=12)
SESSION_MAX = dt.timedelta(days=7)
# Failed logins: this many are free within the window; each further one doubles the wait.
FREE_FAILURES = 5
FAILURE_WINDOW = dt.timedelta(minutes=15)
MAX_WAIT = dt.timedelta(minutes=15)


def _hash(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def same(a: str | None, b: str | None) -> bool:
    return bool(a) and bool(b) and hmac.compare_digest(str(a), str(b))


def new_csrf() -> str:
    return secrets.token_urlsafe(32)


def open_session(session: Session, user: User, verified: bool) -> tuple[WebSession, str]:
    """A new session row for ``user``; returns it and the cookie value (shown only here)."""
    key = secrets.token_urlsafe(32)
    now = utcnow()
    row = WebSession(
        key_hash=_hash(key),
        user_id=user.id,
        csrf=new_csrf(),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_MAX,
        verified=verified,
    )
    session.add(row)
    session.flush()
    return row, key


def load_session(session: Session, key: str | None) -> tuple[WebSession, User] | None:
    """The live session named by the cookie, with its active user; None otherwise."""
    if not key:
        return None
    found = session.execute(
        select(WebSession, User)
        .join(User, User.id == WebSession.user_id)
        .where(WebSession.key_hash == _hash(key))
    ).one_or_none()
    if found is None:
        return None
    row, user = found[0], found[1]
    now = utcnow()
    if row.expires_at <= now or now - row.last_seen_at > SESSION_IDLE or not user.is_active:
        session.delete(row)
        session.commit()
        return None
    if now - row.last_seen_at > dt.timedelta(minutes=1):
        row.last_seen_at = now
        session.commit()
    return row, user


def close_session(session: Session, row: WebSession) -> None:
    session.delete(row)


def purge_expired(session: Session, now: dt.datetime | None = None) -> int:
    """Delete sessions past their lifetime or idle too long (nobody can use them any more),
    and failed-login records past their window; returns how many sessions went."""
    now = now or utcnow()
    result = session.execute(
        delete(WebSession).where(
            (WebSession.expires_at <= now) | (WebSession.last_seen_at < now - SESSION_IDLE)
        )
    )
    session.execute(delete(LoginFailure).where(LoginFailure.at < now - FAILURE_WINDOW))
    return int(getattr(result, "rowcount", 0) or 0)


def close_other_sessions(session: Session, user_id: int, keep: int) -> None:
    """After a password change, every other browser logs in again."""
    session.execute(delete(WebSession).where(WebSession.user_id == user_id, WebSession.id != keep))


def principal_of(session: Session, user: User, row: WebSession, client: str | None) -> Principal:
    """A browser user as a Principal: staff see all; members hold their memberships' roles;
    staff viewing as an account hold only a viewer role there."""
    if row.view_as_account_id is not None:
        return Principal(
            user=user,
            token=None,
            scopes=frozenset({"read"}),
            roles={row.view_as_account_id: Role.viewer},
            client_addr=client,
        )
    if user.is_staff:
        return Principal(user=user, token=None, scopes=frozenset({"admin"}), client_addr=client)
    rows = session.execute(
        select(Membership.account_id, Membership.role).where(Membership.user_id == user.id)
    ).all()
    slugs = session.scalars(select(Account.slug).where(Account.id.in_([r[0] for r in rows]))).all()
    return Principal(
        user=user,
        token=None,
        scopes=frozenset(f"account:{s}" for s in slugs),
        roles={r[0]: Role(r[1]) for r in rows},
        client_addr=client,
    )


# -- failed logins -------------------------------------------------------------------------


def _keys(email: str, client: str | None) -> list[str]:
    return [f"email:{email.lower()}"] + ([f"addr:{client}"] if client else [])


def wait_before_login(session: Session, email: str, client: str | None) -> int:
    """Seconds the caller must still wait before another try (0: go ahead)."""
    since = utcnow() - FAILURE_WINDOW
    worst = 0
    for key in _keys(email, client):
        count, last = session.execute(
            select(func.count(), func.max(LoginFailure.at)).where(
                LoginFailure.key == key, LoginFailure.at >= since
            )
        ).one()
        if count < FREE_FAILURES or last is None:
            continue
        if last.tzinfo is None:  # func.max() bypasses the column type on SQLite
            last = dt.datetime.fromisoformat(str(last)).replace(tzinfo=dt.UTC)
        wait = min(dt.timedelta(seconds=2 ** (count - FREE_FAILURES + 1)), MAX_WAIT)
        left = (last + wait - utcnow()).total_seconds()
        worst = max(worst, int(left) + 1 if left > 0 else 0)
    return worst


def record_failure(session: Session, email: str, client: str | None) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.at < utcnow() - FAILURE_WINDOW))
    for key in _keys(email, client):
        session.add(LoginFailure(key=key))


def forget_failures(session: Session, email: str) -> None:
    session.execute(delete(LoginFailure).where(LoginFailure.key == f"email:{email.lower()}"))


def check_login(session: Session, email: str, password: str) -> User | None:
    user = session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        verify_password(_dummy_hash(), password)  # the same time whether or not the user exists
        return None
    if not user.is_active or not verify_password(user.password_hash, password):
        return None
    return user


@cache
def _dummy_hash() -> str:
    return hash_password(secrets.token_urlsafe(16))


# -- preferences and TOTP ------------------------------------------------------------------


def prefs_of(session: Session, user_id: int) -> WebPrefs:
    prefs = session.get(WebPrefs, user_id)
    if prefs is None:
        prefs = WebPrefs(user_id=user_id, totp_enabled=False)
        session.add(prefs)
        session.flush()
    return prefs


def totp_ok(secret: str | None, code: str) -> bool:
    if not secret:
        return False
    return pyotp.TOTP(secret).verify(code.strip().replace(" ", ""), valid_window=1)


def new_totp_secret() -> str:
    return pyotp.random_base32()


def totp_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name="Konbit")
