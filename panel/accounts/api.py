"""``/api/v1/accounts``, ``/users``, ``/accounts/{id}/memberships`` and ``/tokens``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from panel.accounts import service
from panel.accounts.models import Account, AccountStatus, ApiToken, Membership, Role, User
from panel.accounts.schemas import (
    AccountCreate,
    AccountOut,
    AccountUpdate,
    MembershipCreate,
    MembershipOut,
    MembershipUpdate,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
    UserUpdate,
)
from panel.audit import service as audit
from panel.core.auth import Principal, hash_password, verify_password
from panel.core.db import utcnow
from panel.core.errors import Conflict, Forbidden, Invalid, NotFound
from panel.core.http import (
    READ_ERRORS,
    WRITE_ERRORS,
    IfMatch,
    ListDep,
    PrincipalDep,
    SessionDep,
    SettingsDep,
    check_if_match,
    set_etag,
    text_match,
)
from panel.core.idempotency import Idempotency, get_idempotency
from panel.core.objects import apply_changes, finish_create, finish_update
from panel.core.pagination import Page, paginate
from panel.hosts.service import bump_generations

accounts = APIRouter(prefix="/accounts", tags=["accounts"])
users = APIRouter(prefix="/users", tags=["users"])
tokens = APIRouter(prefix="/tokens", tags=["tokens"])
IdemDep = Annotated[Idempotency, Depends(get_idempotency)]


# -- accounts ----------------------------------------------------------------------------


def _account(session: SessionDep, principal: Principal, account_id: int) -> Account:
    principal.require(account_id, Role.viewer)
    account = session.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    return account


@accounts.get("", response_model=Page[AccountOut], responses=READ_ERRORS)
def list_accounts(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the accounts you belong to (staff: all)."""
    stmt = principal.fence(select(Account), Account.id)
    if params.status is not None:
        raise Invalid("status", "accounts filter on account_status, not object status")
    if params.account_id is not None:
        stmt = stmt.where(Account.id == params.account_id)
    if params.q is not None:
        stmt = stmt.where(text_match(Account.slug, params.q))
    rows, cursor = paginate(session, stmt, Account.id, params.cursor, params.limit)
    return Page(items=[AccountOut.model_validate(r) for r in rows], next_cursor=cursor)


@accounts.post("", status_code=201, response_model=AccountOut, responses=WRITE_ERRORS)
def create_account(
    body: AccountCreate,
    session: SessionDep,
    principal: PrincipalDep,
    settings: SettingsDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create a member account (staff)."""
    principal.require_staff()
    if replay := idem.replay(session, principal, body):
        return replay
    account = service.create_account(
        session,
        slug=body.slug,
        name=body.name,
        email=body.email,
        quotas=body.quotas,
        defaults=settings.default_quotas,
    )
    out = AccountOut.model_validate(account)
    return finish_create(session, principal, idem, body, account, out, response, body.model_dump())


@accounts.get("/{account_id}", response_model=AccountOut, responses=READ_ERRORS)
def get_account(
    account_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One account."""
    account = _account(session, principal, account_id)
    set_etag(response, account)
    return AccountOut.model_validate(account)


@accounts.patch("/{account_id}", response_model=AccountOut, responses=WRITE_ERRORS)
def update_account(
    account_id: int,
    body: AccountUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change name and email (owner), quotas and status (staff)."""
    account = _account(session, principal, account_id)
    principal.require(account_id, Role.owner)
    check_if_match(if_match, account)
    values = {k: v for k, v in body.model_dump(exclude_unset=True).items() if v is not None}
    if ("quotas" in values or "status" in values) and not principal.is_staff:
        raise Forbidden("Only the provider's staff change quotas or the account's status.")
    if "quotas" in values:
        values["quotas"] = {**account.quotas, **values["quotas"]}
    changes = apply_changes(account, values)
    quotas = changes.get("quotas", {"old": {}, "new": {}})
    if "status" in changes or quotas["old"].get("disk_mb") != quotas["new"].get("disk_mb"):
        # Suspended sites serve the "suspended" page, and web hosts enforce the disk
        # quota on the account's home: every host of the account re-renders.
        bump_generations(session, service.hosts_of(session, account.id))
    finish_update(session, principal, account, changes, response)
    return AccountOut.model_validate(account)


@accounts.delete("/{account_id}", response_model=AccountOut, responses=WRITE_ERRORS)
def close_account(account_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Close an empty account (staff); it stays for billing history."""
    account = _account(session, principal, account_id)
    principal.require_staff()
    from panel.databases.models import Database, DatabaseUser
    from panel.domains.models import Domain
    from panel.lists.models import MailingList
    from panel.mail.models import MailAlias, Mailbox
    from panel.sites.models import Site

    for model in (Site, Mailbox, MailAlias, MailingList, Database, DatabaseUser, Domain):
        if session.scalar(select(model.id).where(model.account_id == account.id).limit(1)):
            raise Conflict(
                f"The account still has {model.__tablename__.replace('_', ' ')}; delete them first."
            )
    changes = apply_changes(account, {"status": AccountStatus.closed})
    audit.record(session, principal, "delete", account, changes, account_id=account.id)
    session.commit()
    return AccountOut.model_validate(account)


# -- memberships -------------------------------------------------------------------------


def _membership_out(m: Membership, email: str) -> MembershipOut:
    return MembershipOut(
        id=m.id,
        account_id=m.account_id,
        user_id=m.user_id,
        email=email,
        role=m.role,
        created_at=m.created_at,
    )


@accounts.get(
    "/{account_id}/memberships", response_model=list[MembershipOut], responses=READ_ERRORS
)
def list_memberships(account_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Who belongs to the account, with which role."""
    _account(session, principal, account_id)
    rows = session.execute(
        select(Membership, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account_id)
        .order_by(Membership.id)
    ).all()
    return [_membership_out(m, email) for m, email in rows]


@accounts.post(
    "/{account_id}/memberships",
    status_code=201,
    response_model=MembershipOut,
    responses=WRITE_ERRORS,
)
def add_membership(
    account_id: int, body: MembershipCreate, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Give an existing user a role in the account (owner)."""
    _account(session, principal, account_id)
    principal.require(account_id, Role.owner)
    m, user = service.add_membership(session, account_id, body.email, body.role)
    audit.record(session, principal, "create", m, {"email": user.email, "role": body.role})
    session.commit()
    return _membership_out(m, user.email)


def _membership(
    session: SessionDep, principal: Principal, account_id: int, membership_id: int
) -> Membership:
    _account(session, principal, account_id)
    m = session.get(Membership, membership_id)
    if m is None or m.account_id != account_id:
        raise NotFound("membership")
    principal.require(account_id, Role.owner)
    return m


@accounts.patch(
    "/{account_id}/memberships/{membership_id}",
    response_model=MembershipOut,
    responses=WRITE_ERRORS,
)
def change_membership(
    account_id: int,
    membership_id: int,
    body: MembershipUpdate,
    session: SessionDep,
    principal: PrincipalDep,
) -> Any:
    """Change a member's role (owner); the last owner stays an owner."""
    m = _membership(session, principal, account_id, membership_id)
    changes = service.change_role(session, m, body.role)
    if changes:
        audit.record(session, principal, "update", m, changes)
    session.commit()
    email = session.get_one(User, m.user_id).email
    return _membership_out(m, email)


@accounts.delete(
    "/{account_id}/memberships/{membership_id}", status_code=204, responses=WRITE_ERRORS
)
def remove_membership(
    account_id: int, membership_id: int, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Remove someone from the account (owner); the last owner cannot be removed."""
    m = _membership(session, principal, account_id, membership_id)
    service.remove_membership(session, m)
    audit.record(session, principal, "delete", m, {"user_id": m.user_id})
    session.commit()
    return Response(status_code=204)


# -- users -------------------------------------------------------------------------------


@users.get("", response_model=Page[UserOut], responses=READ_ERRORS)
def list_users(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List users (staff)."""
    principal.require_staff()
    stmt = select(User)
    if params.q:
        stmt = stmt.where(text_match(User.email, params.q))
    rows, cursor = paginate(session, stmt, User.id, params.cursor, params.limit)
    return Page(items=[UserOut.model_validate(r) for r in rows], next_cursor=cursor)


@users.post("", status_code=201, response_model=UserOut, responses=WRITE_ERRORS)
def create_user(
    body: UserCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create a user (staff); give them a role with a membership."""
    principal.require_staff()
    if replay := idem.replay(session, principal, body):
        return replay
    user = service.create_user(
        session,
        email=body.email,
        name=body.name or "",
        password=body.password,
        is_staff=body.is_staff,
    )
    out = UserOut.model_validate(user)
    return finish_create(
        session, principal, idem, body, user, out, response, body.model_dump(exclude={"password"})
    )


@users.get("/me", response_model=UserOut, responses=READ_ERRORS)
def me(principal: PrincipalDep) -> Any:
    """The user behind your token."""
    return UserOut.model_validate(principal.user)


def _user(session: SessionDep, principal: Principal, user_id: int) -> User:
    if user_id != principal.user.id and not principal.is_staff:
        raise NotFound("user")
    user = session.get(User, user_id)
    if user is None:
        raise NotFound("user")
    return user


@users.get("/{user_id}", response_model=UserOut, responses=READ_ERRORS)
def get_user(user_id: int, session: SessionDep, principal: PrincipalDep, response: Response) -> Any:
    """One user (yourself, or anyone for staff)."""
    user = _user(session, principal, user_id)
    set_etag(response, user)
    return UserOut.model_validate(user)


@users.patch("/{user_id}", response_model=UserOut, responses=WRITE_ERRORS)
def update_user(
    user_id: int,
    body: UserUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change your name or password (with the current one); staff change anything."""
    user = _user(session, principal, user_id)
    check_if_match(if_match, user)
    if principal.read_only and not principal.is_staff:
        raise Forbidden("A read-only token cannot change users.")
    values = body.model_dump(exclude_unset=True, exclude={"password", "current_password"})
    values = {k: v for k, v in values.items() if v is not None}
    if ({"is_staff", "is_active"} & set(values)) and not principal.is_staff:
        raise Forbidden("Only staff change is_staff or is_active.")
    changes = apply_changes(user, values)
    if body.password is not None:
        if not principal.is_staff and not verify_password(
            user.password_hash, body.current_password or ""
        ):
            raise Invalid("current_password", "does not match your current password")
        user.password_hash = hash_password(body.password)
        user.updated_at = utcnow()
        changes["password"] = audit.SECRET_CHANGED
    finish_update(session, principal, user, changes, response)
    return UserOut.model_validate(user)


@users.delete("/{user_id}", response_model=UserOut, responses=WRITE_ERRORS)
def disable_user(user_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Disable a user (staff): their tokens stop working; the audit trail keeps their name."""
    user = _user(session, principal, user_id)
    principal.require_staff()
    changes = apply_changes(user, {"is_active": False})
    audit.record(session, principal, "delete", user, changes, account_id=None)
    session.commit()
    return UserOut.model_validate(user)


# -- tokens ------------------------------------------------------------------------------


@tokens.get("", response_model=Page[TokenOut], responses=READ_ERRORS)
def list_tokens(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """Your tokens (never their secrets)."""
    stmt = select(ApiToken).where(ApiToken.user_id == principal.user.id)
    rows, cursor = paginate(session, stmt, ApiToken.id, params.cursor, params.limit)
    return Page(items=[TokenOut.model_validate(r) for r in rows], next_cursor=cursor)


@tokens.post("", status_code=201, response_model=TokenCreated, responses=WRITE_ERRORS)
def create_token(body: TokenCreate, session: SessionDep, principal: PrincipalDep) -> Any:
    """Create a token; its secret is in this answer and nowhere else, ever."""
    user = principal.user
    if body.user_id is not None and body.user_id != principal.user.id:
        principal.require_staff()
        user = _user(session, principal, body.user_id)
    token, secret = service.create_token(
        session,
        principal,
        user,
        name=body.name,
        scopes=list(body.scopes),
        expires_at=body.expires_at,
    )
    audit.record(
        session,
        principal,
        "create",
        token,
        {"name": token.name, "scopes": token.scopes, "user_id": user.id},
    )
    session.commit()
    return TokenCreated(**TokenOut.model_validate(token).model_dump(), token=secret)


def _token(session: SessionDep, principal: Principal, token_id: int) -> ApiToken:
    token = session.get(ApiToken, token_id)
    if token is None or (token.user_id != principal.user.id and not principal.is_staff):
        raise NotFound("token")
    return token


@tokens.get("/{token_id}", response_model=TokenOut, responses=READ_ERRORS)
def get_token(token_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """One of your tokens."""
    return TokenOut.model_validate(_token(session, principal, token_id))


@tokens.delete("/{token_id}", response_model=TokenOut, responses=WRITE_ERRORS)
def revoke_token(token_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """Revoke a token at once."""
    token = _token(session, principal, token_id)
    if service.revoke_token(token):
        audit.record(session, principal, "revoke", token, {"name": token.name})
        session.commit()
    return TokenOut.model_validate(token)
