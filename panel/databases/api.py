"""``/api/v1/databases`` and ``/api/v1/database-users``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from panel.core.http import (
    READ_ERRORS,
    WRITE_ERRORS,
    IfMatch,
    ListDep,
    PrincipalDep,
    SessionDep,
    apply_filters,
    check_if_match,
    set_etag,
)
from panel.core.idempotency import Idempotency, get_idempotency
from panel.core.objects import (
    finish_create,
    finish_delete,
    finish_update,
    get_visible,
    get_writable,
)
from panel.core.pagination import Page, paginate
from panel.databases import service
from panel.databases.models import Database, DatabaseUser
from panel.databases.schemas import (
    DatabaseCreate,
    DatabaseOut,
    DatabaseUserCreate,
    DatabaseUserOut,
    DatabaseUserUpdate,
)
from panel.hosts.service import mark_deleting

databases = APIRouter(prefix="/databases", tags=["databases"])
users = APIRouter(prefix="/database-users", tags=["database-users"])
IdemDep = Annotated[Idempotency, Depends(get_idempotency)]
WITH_GRANTS = (selectinload(DatabaseUser.databases),)


@databases.get("", response_model=Page[DatabaseOut], responses=READ_ERRORS)
def list_databases(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the databases you can see."""
    stmt = apply_filters(
        principal.fence(select(Database), Database.account_id), Database, params, Database.name
    )
    rows, cursor = paginate(session, stmt, Database.id, params.cursor, params.limit)
    return Page(items=[DatabaseOut.of(r) for r in rows], next_cursor=cursor)


@databases.post("", status_code=201, response_model=DatabaseOut, responses=WRITE_ERRORS)
def create_database(
    body: DatabaseCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create a database named `<slug>_<suffix>` on a db host with its engine."""
    if replay := idem.replay(session, principal, body):
        return replay
    db = service.create_database(session, principal, body)
    out = DatabaseOut.of(db)
    return finish_create(
        session, principal, idem, body, db, out, response, body.model_dump(exclude={"account_id"})
    )


@databases.get("/{database_id}", response_model=DatabaseOut, responses=READ_ERRORS)
def get_database(
    database_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One database."""
    db = get_visible(session, principal, Database, database_id)
    set_etag(response, db)
    return DatabaseOut.of(db)


@databases.delete(
    "/{database_id}", status_code=202, response_model=DatabaseOut, responses=WRITE_ERRORS
)
def delete_database(
    database_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete a database: the host dumps it into an archive before dropping it."""
    db = get_writable(session, principal, Database, database_id)
    check_if_match(if_match, db)
    mark_deleting(session, db)
    finish_delete(session, principal, db, db.name)
    return DatabaseOut.of(db)


@users.get("", response_model=Page[DatabaseUserOut], responses=READ_ERRORS)
def list_users(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the database users you can see."""
    stmt = principal.fence(select(DatabaseUser).options(*WITH_GRANTS), DatabaseUser.account_id)
    stmt = apply_filters(stmt, DatabaseUser, params, DatabaseUser.name)
    rows, cursor = paginate(session, stmt, DatabaseUser.id, params.cursor, params.limit)
    return Page(items=[DatabaseUserOut.of(r) for r in rows], next_cursor=cursor)


@users.post("", status_code=201, response_model=DatabaseUserOut, responses=WRITE_ERRORS)
def create_user(
    body: DatabaseUserCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create a database user with grants on some of the account's databases."""
    if replay := idem.replay(session, principal, body):
        return replay
    user = service.create_user(session, principal, body)
    out = DatabaseUserOut.of(user)
    return finish_create(
        session,
        principal,
        idem,
        body,
        user,
        out,
        response,
        body.model_dump(exclude={"account_id", "password"}),
    )


@users.get("/{user_id}", response_model=DatabaseUserOut, responses=READ_ERRORS)
def get_user(user_id: int, session: SessionDep, principal: PrincipalDep, response: Response) -> Any:
    """One database user."""
    user = get_visible(session, principal, DatabaseUser, user_id, WITH_GRANTS)
    set_etag(response, user)
    return DatabaseUserOut.of(user)


@users.patch("/{user_id}", response_model=DatabaseUserOut, responses=WRITE_ERRORS)
def update_user(
    user_id: int,
    body: DatabaseUserUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change the password or the databases granted (honours If-Match)."""
    user = get_writable(session, principal, DatabaseUser, user_id, WITH_GRANTS)
    check_if_match(if_match, user)
    changes = service.update_user(session, user, body)
    finish_update(session, principal, user, changes, response)
    return DatabaseUserOut.of(user)


@users.delete("/{user_id}", status_code=202, response_model=DatabaseUserOut, responses=WRITE_ERRORS)
def delete_user(
    user_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete a database user (its databases stay)."""
    user = get_writable(session, principal, DatabaseUser, user_id, WITH_GRANTS)
    check_if_match(if_match, user)
    mark_deleting(session, user)
    finish_delete(session, principal, user, user.name)
    return DatabaseUserOut.of(user)
