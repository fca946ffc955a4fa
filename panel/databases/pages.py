"""A member's databases and database logins: create them, change a login's databases and
password (shown once)."""

from __future__ import annotations

import secrets
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from panel.accounts.models import Account, Role
from panel.core.db import ObjectStatus
from panel.core.objects import get_visible, get_writable
from panel.databases import service as databases
from panel.databases.models import Database, DatabaseUser, Engine
from panel.databases.schemas import DatabaseCreate, DatabaseUserCreate, DatabaseUserUpdate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    create,
    redirect,
    render,
    save,
    text,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def new_password() -> str:
    return secrets.token_urlsafe(18)


@router.get("/accounts/{account_id}/databases/new")
def new_database(account_id: int, web: WebDep) -> Response:
    account = account_of(web, account_id, Role.manager)
    return render(
        web,
        "panel/database_form.html",
        account=account,
        errors=FormErrors(),
        values={"engine": "mariadb", "name": account.slug.replace("-", "_") + "_"},
        engines=[e.value for e in Engine],
    )


@router.post("/accounts/{account_id}/databases")
def create_database(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {"name": text(form, "name"), "engine": text(form, "engine")}
    db = create(web, account, DatabaseCreate, databases.create_database, values)
    if isinstance(db, FormErrors):
        return render(
            web,
            "panel/database_form.html",
            422,
            account=account,
            values=values,
            errors=db,
            engines=[e.value for e in Engine],
        )
    return redirect(
        f"/accounts/{account.id}", web._("Database %(name)s created.") % {"name": db.name}
    )


def _account_dbs(web: Web, account: Account) -> list[Database]:
    return list(
        web.db.scalars(
            select(Database)
            .where(Database.account_id == account.id, Database.status != ObjectStatus.deleting)
            .order_by(Database.name)
        )
    )


def _dbuser_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("dbuser", None)
    ctx.setdefault("password", None)
    ctx.setdefault("values", {"name": account.slug.replace("-", "_") + "_", "databases": []})
    return render(
        web,
        "panel/dbuser_form.html",
        status,
        account=account,
        all_databases=_account_dbs(web, account),
        **ctx,
    )


@router.get("/accounts/{account_id}/dbusers/new")
def new_dbuser(account_id: int, web: WebDep) -> Response:
    return _dbuser_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/dbusers")
def create_dbuser(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The password is made here and shown once on the answer page; only a verifier stays."""
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "databases": [str(v) for v in form.getlist("databases")],
    }
    password = new_password()
    user = create(
        web, account, DatabaseUserCreate, databases.create_user, values, password=password
    )
    if isinstance(user, FormErrors):
        return _dbuser_form(web, account, 422, errors=user, values=values)
    user = get_visible(
        web.db, web.p, DatabaseUser, user.id, (selectinload(DatabaseUser.databases),)
    )
    return _dbuser_form(
        web,
        account,
        201,
        dbuser=user,
        password=password,
        values={"name": user.name, "databases": [d.name for d in user.databases]},
    )


@router.get("/dbusers/{user_id}")
def edit_dbuser(user_id: int, web: WebDep) -> Response:
    user = get_visible(
        web.db, web.p, DatabaseUser, user_id, (selectinload(DatabaseUser.databases),)
    )
    account = account_of(web, user.account_id)
    return _dbuser_form(
        web,
        account,
        dbuser=user,
        values={"name": user.name, "databases": [d.name for d in user.databases]},
    )


@router.post("/dbusers/{user_id}")
def update_dbuser(user_id: int, web: WebDep, form: CsrfForm) -> Response:
    user = get_writable(
        web.db, web.p, DatabaseUser, user_id, (selectinload(DatabaseUser.databases),)
    )
    account = account_of(web, user.account_id)
    grants = [str(v) for v in form.getlist("databases")]
    password = new_password() if form.get("new_password") == "on" else None
    values = {"name": user.name, "databases": grants}
    errors = save(
        web,
        user,
        databases.update_user,
        lambda: DatabaseUserUpdate(password=password, databases=grants),
    )
    if errors is not None:
        return _dbuser_form(web, account, 422, dbuser=user, errors=errors, values=values)
    return _dbuser_form(web, account, dbuser=user, password=password, values=values, saved=True)
