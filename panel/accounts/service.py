"""Accounts, users, memberships and tokens: the decisions, no commits."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select, union
from sqlalchemy.orm import Session

from panel.accounts.models import Account, AccountStatus, ApiToken, Membership, Role, User
from panel.core.auth import Principal, hash_password, new_token
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import Conflict, Forbidden, Invalid, NotFound, QuotaExceeded

QUOTA_NAMES = ("sites", "mailboxes", "lists", "databases", "disk_mb", "mail_mb")


def account_for_write(session: Session, principal: Principal, account_id: int) -> Account:
    """The account a new object goes into: visible, writable by the caller, and active."""
    principal.require(account_id, Role.manager)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    if account.status != AccountStatus.active:
        raise Conflict(
            f"The account is {account.status}; nothing can be added until staff reactivate it."
        )
    return account


def check_count_quota(
    session: Session, account: Account, quota: str, model: Any, *where: Any
) -> None:
    """Refuse a create that would pass the account's quota for that kind of object
    (``where``: what narrows ``model`` to that kind, for a table of several kinds)."""
    limit = account.quotas.get(quota)
    if limit is None:
        return
    used = (
        session.scalar(
            select(func.count())
            .select_from(model)
            .where(model.account_id == account.id, model.status != ObjectStatus.deleting, *where)
        )
        or 0
    )
    if used >= limit:
        raise QuotaExceeded(quota, used, int(limit))


def create_account(
    session: Session,
    *,
    slug: str,
    name: str,
    email: str,
    quotas: dict[str, int],
    defaults: dict[str, int],
) -> Account:
    if session.scalar(select(Account.id).where(Account.slug == slug)) is not None:
        raise Conflict(f"An account with slug '{slug}' already exists; choose another slug.")
    account = Account(slug=slug, name=name, email=email, quotas={**defaults, **quotas})
    session.add(account)
    session.flush()
    return account


def create_user(
    session: Session,
    *,
    email: str,
    name: str = "",
    password: str | None = None,
    is_staff: bool = False,
) -> User:
    if session.scalar(select(User.id).where(User.email == email)) is not None:
        raise Conflict(f"A user with email '{email}' already exists.")
    user = User(
        email=email,
        name=name,
        password_hash=hash_password(password) if password else None,
        is_staff=is_staff,
    )
    session.add(user)
    session.flush()
    return user


def implied(holder: frozenset[str], scope: str, is_staff: bool) -> bool:
    """May a token with ``holder`` scopes mint a token with ``scope``? Never wider."""
    if "admin" in holder and is_staff:
        return True
    return scope in holder


def create_token(
    session: Session,
    principal: Principal | None,
    user: User,
    *,
    name: str,
    scopes: list[str],
    expires_at: dt.datetime | None,
) -> tuple[ApiToken, str]:
    """A new token for ``user``; ``principal`` None means the local CLI (root on the panel)."""
    if expires_at is not None and expires_at <= utcnow():
        raise Invalid("expires_at", "must be in the future")
    if "admin" in scopes and not user.is_staff:
        raise Invalid("scopes", "only staff users may hold the 'admin' scope")
    if principal is not None:
        if principal.read_only and not principal.is_staff:
            raise Forbidden("A read-only token cannot create tokens.")
        if user.id != principal.user.id and not principal.is_staff:
            raise NotFound("user")
        for scope in scopes:
            if not implied(principal.scopes, scope, principal.user.is_staff):
                raise Invalid(
                    "scopes", f"your token does not hold '{scope}', so it cannot grant it"
                )
    slugs = [s.removeprefix("account:") for s in scopes if s.startswith("account:")]
    if slugs:
        member_of = set(
            session.scalars(
                select(Account.slug)
                .join(Membership, Membership.account_id == Account.id)
                .where(Membership.user_id == user.id, Account.slug.in_(slugs))
            )
        )
        missing = sorted(set(slugs) - member_of)
        if missing and not user.is_staff:
            raise Invalid("scopes", f"the user is not a member of: {', '.join(missing)}")
    secret, token_hash, prefix = new_token()
    token = ApiToken(
        user_id=user.id,
        name=name,
        token_hash=token_hash,
        prefix=prefix,
        scopes=sorted(set(scopes)),
        expires_at=expires_at,
    )
    session.add(token)
    session.flush()
    return token, secret


LAST_OWNER = "This is the account's last owner; make someone else owner first."


def add_membership(
    session: Session, account_id: int, email: str, role: Role
) -> tuple[Membership, User]:
    """Give an existing user (by email) a role in the account; one membership per user."""
    user = session.scalar(select(User).where(User.email == email))
    if user is None:
        raise Invalid("email", "no user has this email; staff create users first")
    if session.scalar(
        select(Membership.id).where(
            Membership.account_id == account_id, Membership.user_id == user.id
        )
    ):
        raise Conflict("This user is already a member; change the role instead.")
    m = Membership(account_id=account_id, user_id=user.id, role=role)
    session.add(m)
    session.flush()
    return m, user


def change_role(session: Session, m: Membership, role: Role) -> dict[str, Any]:
    """A member's new role; the account's last owner stays an owner."""
    from panel.core.objects import apply_changes

    last = m.role == Role.owner and owners_left(session, m.account_id, m.id) == 0
    if last and role != Role.owner:
        raise Conflict(LAST_OWNER)
    return apply_changes(m, {"role": role})


def remove_membership(session: Session, m: Membership) -> None:
    """Someone leaves the account; the last owner cannot."""
    if m.role == Role.owner and owners_left(session, m.account_id, m.id) == 0:
        raise Conflict(LAST_OWNER)
    session.delete(m)


def revoke_token(token: ApiToken) -> bool:
    """Revoke at once; False if it was revoked already (nothing to record)."""
    if token.revoked_at is not None:
        return False
    token.revoked_at = utcnow()
    return True


def owners_left(session: Session, account_id: int, excluding: int) -> int:
    return (
        session.scalar(
            select(func.count())
            .select_from(Membership)
            .where(
                Membership.account_id == account_id,
                Membership.role == Role.owner,
                Membership.id != excluding,
            )
        )
        or 0
    )


def hosts_of(session: Session, account_id: int) -> list[int]:
    """Every host that carries one of the account's objects (a suspension reaches them all)."""
    from panel.databases.models import Database, DatabaseUser
    from panel.lists.models import MailingList
    from panel.mail.models import MailAlias, Mailbox
    from panel.sites.models import Site

    models = (Site, Mailbox, MailAlias, MailingList, Database, DatabaseUser)
    query = union(*(select(m.host_id).where(m.account_id == account_id) for m in models)).subquery()
    return list(session.scalars(select(query.c.host_id)))
