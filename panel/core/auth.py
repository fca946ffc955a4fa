"""Who is calling: bearer tokens, scopes, roles, and the tenancy fence built on them."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets
from dataclasses import dataclass, field
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Select, select, update
from sqlalchemy.orm import Session

from panel.accounts.models import ROLE_RANK, Account, ApiToken, Membership, Role, User
from panel.core.db import utcnow
from panel.core.errors import Forbidden, NotFound, Unauthorized

TOKEN_PREFIX = "kb_"  # noqa: S105 - a public marker, not a secret
LAST_USED_GRANULARITY = dt.timedelta(minutes=1)
_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password_hash: str | None, password: str) -> bool:
    if not password_hash:
        return False
    try:
        return _hasher.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def new_token() -> tuple[str, str, str]:
    """A fresh token: (the secret shown once, its hash, a prefix safe to display)."""
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    return token, hash_token(token), token[:10]


def check_scope(scope: str) -> str:
    if scope in {"admin", "read", "billing"}:
        return scope
    if scope.startswith("account:") and len(scope) > len("account:"):
        from panel.core.validation import check_slug

        check_slug(scope.removeprefix("account:"))
        return scope
    raise ValueError("must be 'admin', 'read', 'billing' or 'account:<slug>'")


@dataclass(frozen=True)
class Principal:
    """The caller of one request: a user seen through one token's scopes."""

    user: User
    token: ApiToken | None
    scopes: frozenset[str]
    roles: dict[int, Role] = field(default_factory=dict)
    client_addr: str | None = None

    @property
    def is_staff(self) -> bool:
        return self.user.is_staff and "admin" in self.scopes

    @property
    def is_billing(self) -> bool:
        return self.is_staff or "billing" in self.scopes

    @property
    def read_only(self) -> bool:
        return not self.is_staff and not any(s.startswith("account:") for s in self.scopes)

    def visible_accounts(self) -> list[int] | None:
        """Account ids this caller may see; None means all (staff)."""
        return None if self.is_staff else sorted(self.roles)

    def role(self, account_id: int) -> Role | None:
        if self.is_staff:
            return Role.owner
        return self.roles.get(account_id)

    def require(self, account_id: int, needed: Role) -> None:
        """404 when the account is not visible, 403 when visible but the role is short."""
        role = self.role(account_id)
        if role is None:
            raise NotFound()
        if needed is not Role.viewer and self.read_only:
            raise Forbidden("This token is read-only; use a token with an account scope.")
        if ROLE_RANK[role] < ROLE_RANK[needed]:
            raise Forbidden(
                f"Your role in this account is {role.value}; this needs {needed.value}. "
                "Ask an owner of the account."
            )

    def require_staff(self) -> None:
        if not self.is_staff:
            raise Forbidden("Only the provider's staff (a token with the admin scope) may do this.")

    def fence(self, stmt: Select[Any], account_column: Any) -> Select[Any]:
        """Restrict a query to the accounts this caller may see."""
        visible = self.visible_accounts()
        if visible is None:
            return stmt
        return stmt.where(account_column.in_(visible))


def authenticate(session: Session, authorization: str | None, client_addr: str | None) -> Principal:
    if not authorization or not authorization.lower().startswith("bearer "):
        raise Unauthorized(
            "Send 'Authorization: Bearer <token>'; create one with `konbit token create`."
        )
    token_value = authorization[7:].strip()
    row = session.execute(
        select(ApiToken, User)
        .join(User, User.id == ApiToken.user_id)
        .where(ApiToken.token_hash == hash_token(token_value))
    ).one_or_none()
    now = utcnow()
    if row is None:
        raise Unauthorized("Unknown token; check KONBIT_TOKEN or create a new token.")
    token, user = row[0], row[1]
    if token.revoked_at is not None:
        raise Unauthorized("This token was revoked; create a new one.")
    if token.expires_at is not None and token.expires_at <= now:
        raise Unauthorized("This token has expired; create a new one.")
    if not user.is_active:
        raise Unauthorized("This user is disabled; ask the provider's staff.")
    if token.last_used_at is None or now - token.last_used_at > LAST_USED_GRANULARITY:
        # Recorded to the minute: a write per request would serialise every reader.
        session.execute(update(ApiToken).where(ApiToken.id == token.id).values(last_used_at=now))
        session.commit()
    return principal_for(session, user, token, frozenset(token.scopes), client_addr)


def principal_for(
    session: Session,
    user: User,
    token: ApiToken | None,
    scopes: frozenset[str],
    client_addr: str | None = None,
) -> Principal:
    roles: dict[int, Role] = {}
    if not (user.is_staff and "admin" in scopes):
        account_scopes = {s.removeprefix("account:") for s in scopes if s.startswith("account:")}
        all_accounts = "read" in scopes
        rows = session.execute(
            select(Membership.account_id, Membership.role, Account.slug)
            .join(Account, Account.id == Membership.account_id)
            .where(Membership.user_id == user.id)
        ).all()
        for account_id, role, slug in rows:
            if slug in account_scopes:
                roles[account_id] = Role(role)
            elif all_accounts:
                roles[account_id] = Role.viewer
    return Principal(user=user, token=token, scopes=scopes, roles=roles, client_addr=client_addr)
