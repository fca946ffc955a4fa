"""Mailing lists, databases and their users (password shown once), account members and
your own API tokens (shown once, revocable)."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from panel.accounts import service as accounts
from panel.accounts.models import Account, ApiToken, Membership, Role, User
from panel.accounts.schemas import MembershipCreate, TokenCreate
from panel.audit import service as audit
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import NotFound, ProblemError
from panel.core.objects import get_visible, get_writable
from panel.databases import service as databases
from panel.databases.models import Database, DatabaseUser, Engine
from panel.databases.schemas import DatabaseCreate, DatabaseUserCreate, DatabaseUserUpdate
from panel.lists import service as lists
from panel.lists.models import MailingList, SubscriptionPolicy
from panel.lists.schemas import ListCreate, ListUpdate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    errors_of,
    lines,
    redirect,
    render,
)
from panel.web.member_pages import account_of, create, save, text

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def new_password() -> str:
    return secrets.token_urlsafe(18)


# -- mailing lists -------------------------------------------------------------------------


def _list_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("mlist", None)
    ctx.setdefault("values", {"policy": "confirm", "owners": [web.p.user.email]})
    return render(web, "panel/list_form.html", status, account=account,
                  policies=[p.value for p in SubscriptionPolicy], **ctx)


@router.get("/accounts/{account_id}/lists/new")
def new_list(account_id: int, web: WebDep) -> Response:
    return _list_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/lists")
def create_list(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {"address": text(form, "address").lower(),
                              "owners": lines(form.get("owners")),
                              "policy": text(form, "policy") or "confirm"}
    mlist = create(web, account, ListCreate, lists.create_list, values)
    if isinstance(mlist, FormErrors):
        return _list_form(web, account, 422, errors=mlist, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Mailing list %(name)s created.") % {"name": mlist.address})


@router.get("/lists/{list_id}")
def edit_list(list_id: int, web: WebDep) -> Response:
    mlist = get_visible(web.db, web.p, MailingList, list_id)
    account = account_of(web, mlist.account_id)
    values = {"address": mlist.address, "owners": mlist.owners, "policy": mlist.policy}
    return _list_form(web, account, mlist=mlist, values=values)


@router.post("/lists/{list_id}")
def update_list(list_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    account = account_of(web, mlist.account_id)
    values: dict[str, Any] = {"owners": lines(form.get("owners")),
                              "policy": text(form, "policy") or None}
    errors = save(web, mlist, lists.update_list, lambda: ListUpdate(**values))
    if errors is not None:
        values["address"] = mlist.address
        return _list_form(web, account, 422, mlist=mlist, errors=errors, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Mailing list %(name)s saved.") % {"name": mlist.address})


# -- databases -----------------------------------------------------------------------------


@router.get("/accounts/{account_id}/databases/new")
def new_database(account_id: int, web: WebDep) -> Response:
    account = account_of(web, account_id, Role.manager)
    return render(web, "panel/database_form.html", account=account, errors=FormErrors(),
                  values={"engine": "mariadb", "name": account.slug.replace("-", "_") + "_"},
                  engines=[e.value for e in Engine])


@router.post("/accounts/{account_id}/databases")
def create_database(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {"name": text(form, "name"), "engine": text(form, "engine")}
    db = create(web, account, DatabaseCreate, databases.create_database, values)
    if isinstance(db, FormErrors):
        return render(web, "panel/database_form.html", 422, account=account, values=values,
                      errors=db, engines=[e.value for e in Engine])
    return redirect(f"/accounts/{account.id}",
                    web._("Database %(name)s created.") % {"name": db.name})


def _account_dbs(web: Web, account: Account) -> list[Database]:
    return list(web.db.scalars(
        select(Database).where(Database.account_id == account.id,
                               Database.status != ObjectStatus.deleting).order_by(Database.name)
    ))


def _dbuser_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("dbuser", None)
    ctx.setdefault("password", None)
    ctx.setdefault("values", {"name": account.slug.replace("-", "_") + "_", "databases": []})
    return render(web, "panel/dbuser_form.html", status, account=account,
                  all_databases=_account_dbs(web, account), **ctx)


@router.get("/accounts/{account_id}/dbusers/new")
def new_dbuser(account_id: int, web: WebDep) -> Response:
    return _dbuser_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/dbusers")
def create_dbuser(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The password is made here and shown once on the answer page; only a verifier stays."""
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {"name": text(form, "name"),
                              "databases": [str(v) for v in form.getlist("databases")]}
    password = new_password()
    user = create(web, account, DatabaseUserCreate, databases.create_user, values,
                  password=password)
    if isinstance(user, FormErrors):
        return _dbuser_form(web, account, 422, errors=user, values=values)
    user = get_visible(
        web.db, web.p, DatabaseUser, user.id, (selectinload(DatabaseUser.databases),)
    )
    return _dbuser_form(web, account, 201, dbuser=user, password=password,
                        values={"name": user.name, "databases": [d.name for d in user.databases]})


@router.get("/dbusers/{user_id}")
def edit_dbuser(user_id: int, web: WebDep) -> Response:
    user = get_visible(web.db, web.p, DatabaseUser, user_id,
                       (selectinload(DatabaseUser.databases),))
    account = account_of(web, user.account_id)
    return _dbuser_form(web, account, dbuser=user,
                        values={"name": user.name, "databases": [d.name for d in user.databases]})


@router.post("/dbusers/{user_id}")
def update_dbuser(user_id: int, web: WebDep, form: CsrfForm) -> Response:
    user = get_writable(web.db, web.p, DatabaseUser, user_id,
                        (selectinload(DatabaseUser.databases),))
    account = account_of(web, user.account_id)
    grants = [str(v) for v in form.getlist("databases")]
    password = new_password() if form.get("new_password") == "on" else None
    values = {"name": user.name, "databases": grants}
    errors = save(web, user, databases.update_user,
                  lambda: DatabaseUserUpdate(password=password, databases=grants))
    if errors is not None:
        return _dbuser_form(web, account, 422, dbuser=user, errors=errors, values=values)
    return _dbuser_form(web, account, dbuser=user, password=password, values=values,
                        saved=True)


# -- account members (owners) --------------------------------------------------------------


def _members(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    rows = web.db.execute(
        select(Membership, User.email).join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account.id).order_by(Membership.id)
    ).all()
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"role": "viewer"})
    ctx.setdefault("done", None)
    return render(web, "panel/members.html", status, account=account, members=rows,
                  roles=[r.value for r in Role], **ctx)


@router.get("/accounts/{account_id}/members")
def members(account_id: int, web: WebDep) -> Response:
    return _members(web, account_of(web, account_id, Role.owner))


@router.post("/accounts/{account_id}/members")
def add_member(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The API's rule: an existing user's email and a role; owners only."""
    account = account_of(web, account_id, Role.owner)
    values = {"email": text(form, "email").lower(), "role": text(form, "role")}
    try:
        body = MembershipCreate(**values)
        m, user = accounts.add_membership(web.db, account.id, body.email, body.role)
        audit.record(web.db, web.p, "create", m, {"email": user.email, "role": body.role})
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _members(web, account, 422, errors=errors_of(web.tr, exc), values=values)
    return _members(web, account, done=web._("%(email)s added.") % {"email": user.email})


def _membership(web: Web, account: Account, membership_id: int) -> Membership:
    m = web.db.get(Membership, membership_id)
    if m is None or m.account_id != account.id:
        raise NotFound("membership")
    return m


@router.post("/accounts/{account_id}/members/{membership_id}")
def change_member(account_id: int, membership_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.owner)
    m = _membership(web, account, membership_id)
    remove = form.get("action") == "remove"
    role = text(form, "role")
    try:
        if remove:
            accounts.remove_membership(web.db, m)
            audit.record(web.db, web.p, "delete", m, {"user_id": m.user_id})
        else:
            changes = accounts.change_role(web.db, m, Role(role))
            if changes:
                audit.record(web.db, web.p, "update", m, changes)
        web.db.commit()
    except (ProblemError, ValueError) as exc:
        web.db.rollback()
        errors = errors_of(web.tr, exc) if isinstance(exc, ProblemError) else FormErrors(
            general=[web._("Unknown role.")])
        return _members(web, account, 409, errors=errors)
    return redirect(f"/accounts/{account.id}/members")


# -- your API tokens -----------------------------------------------------------------------


def _tokens(web: Web, status: int = 200, **ctx: Any) -> Response:
    p = web.p
    rows = web.db.scalars(
        select(ApiToken).where(ApiToken.user_id == p.user.id).order_by(ApiToken.id.desc())
    ).all()
    scopes = ["read"] + [f"account:{a.slug}" for a in web.accounts()]
    if p.is_staff:
        scopes = ["admin", "billing", *scopes]
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("secret", None)
    ctx.setdefault("values", {})
    return render(web, "panel/tokens.html", status, tokens=rows, scopes=scopes, now=utcnow(),
                  **ctx)


@router.get("/tokens")
def tokens(web: WebDep) -> Response:
    return _tokens(web)


@router.post("/tokens")
def create_token(web: WebDep, form: CsrfForm) -> Response:
    """Scopes never wider than the user's own (the service's rule); the secret shown once."""
    p = web.p
    expires = text(form, "expires")
    values: dict[str, Any] = {"name": text(form, "name"),
                              "scopes": [str(s) for s in form.getlist("scopes")]}
    try:
        expires_at = (
            dt.datetime.combine(dt.date.fromisoformat(expires), dt.time(), dt.UTC)
            if expires else None
        )
        body = TokenCreate(expires_at=expires_at, **values)
        token, secret = accounts.create_token(
            web.db, p, p.user, name=body.name, scopes=list(body.scopes), expires_at=expires_at
        )
        audit.record(web.db, p, "create", token,
                     {"name": token.name, "scopes": token.scopes, "user_id": p.user.id})
        web.db.commit()
    except ValueError as exc:  # a bad date, or pydantic's ValidationError
        web.db.rollback()
        errors = (errors_of(web.tr, exc) if isinstance(exc, ValidationError)
                  else FormErrors(fields={"expires": web._("Give a date like 2030-12-31.")}))
        return _tokens(web, 422, errors=errors, values=values)
    except ProblemError as exc:
        web.db.rollback()
        return _tokens(web, 422, errors=errors_of(web.tr, exc), values=values)
    return _tokens(web, 201, secret=secret)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: int, web: WebDep, form: CsrfForm) -> Response:
    p = web.p
    token = web.db.get(ApiToken, token_id)
    if token is None or token.user_id != p.user.id:
        raise NotFound("token")
    if accounts.revoke_token(token):
        audit.record(web.db, p, "revoke", token, {"name": token.name})
        web.db.commit()
    return redirect("/tokens")
