"""Request plumbing shared by every router: session, caller, ETags, list parameters."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Header, Query, Request, Response
from sqlalchemy.orm import Session

from panel.core.auth import Principal, authenticate
from panel.core.db import Database, ObjectStatus
from panel.core.errors import PreconditionFailed
from panel.core.settings import Settings


def get_db(request: Request) -> Database:
    db: Database = request.app.state.db
    return db


def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


def get_session(db: Annotated[Database, Depends(get_db)]) -> Iterator[Session]:
    """A session per request; routes commit at the edge, anything unfinished rolls back."""
    yield from db.iter_session()


SessionDep = Annotated[Session, Depends(get_session)]
SettingsDep = Annotated[Settings, Depends(get_settings)]


def get_principal(
    request: Request,
    session: SessionDep,
    authorization: Annotated[str | None, Header()] = None,
) -> Principal:
    client = request.client.host if request.client else None
    return authenticate(session, authorization, client)


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def etag_of(obj: Any) -> str:
    return f'"{obj.id}-{obj.version}"'


def set_etag(response: Response, obj: Any) -> None:
    response.headers["ETag"] = etag_of(obj)


def check_if_match(if_match: str | None, obj: Any) -> None:
    """Refuse an update based on a stale read (412), when the client sent If-Match."""
    if if_match is None:
        return
    tags = {t.strip().removeprefix("W/") for t in if_match.split(",")}
    if "*" in tags or etag_of(obj) in tags:
        return
    raise PreconditionFailed(
        f"The object changed since you read it (now {etag_of(obj)}); read it again and retry."
    )


IfMatch = Annotated[str | None, Header(alias="If-Match")]


@dataclass
class ListParams:
    """Query parameters every list endpoint understands."""

    cursor: str | None
    limit: int
    account_id: int | None
    host_id: int | None
    status: ObjectStatus | None
    q: str | None


def list_params(
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    account_id: Annotated[int | None, Query(ge=1)] = None,
    host_id: Annotated[int | None, Query(ge=1)] = None,
    status: ObjectStatus | None = None,
    q: Annotated[str | None, Query(min_length=1, max_length=100)] = None,
) -> ListParams:
    return ListParams(cursor, limit, account_id, host_id, status, q)


ListDep = Annotated[ListParams, Depends(list_params)]


def apply_filters(stmt: Any, model: Any, params: ListParams, text_column: Any = None) -> Any:
    """The filters every list shares: account, host, status and a literal text search."""
    if params.account_id is not None:
        stmt = stmt.where(model.account_id == params.account_id)
    if params.host_id is not None and hasattr(model, "host_id"):
        stmt = stmt.where(model.host_id == params.host_id)
    if params.status is not None and hasattr(model, "status"):
        stmt = stmt.where(model.status == params.status)
    if params.q is not None and text_column is not None:
        stmt = stmt.where(text_match(text_column, params.q))
    return stmt


def text_match(column: Any, q: str) -> Any:
    """``column`` contains ``q`` literally (LIKE wildcards escaped); control characters refused."""
    from panel.core.errors import Invalid
    from panel.core.pagination import like_pattern
    from panel.core.validation import check_text

    try:
        check_text(q)
    except ValueError as exc:
        raise Invalid("q", str(exc)) from None
    return column.like(like_pattern(q.lower()), escape="\\")


PROBLEM: dict[str, Any] = {"content": {"application/problem+json": {}}}
READ_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "No or bad token", **PROBLEM},
    404: {"description": "Not found, or not yours", **PROBLEM},
}
WRITE_ERRORS: dict[int | str, dict[str, Any]] = {
    **READ_ERRORS,
    403: {"description": "Your role does not allow it", **PROBLEM},
    409: {"description": "Conflict or quota reached", **PROBLEM},
    412: {"description": "If-Match does not match the current ETag", **PROBLEM},
    422: {"description": "Invalid input; `errors` names each field", **PROBLEM},
}


class ConcurrencyLimit:
    """ASGI middleware: at most ``limit`` requests inside the app, the rest wait their turn.

    Without it, many clients stalled the server (found by bench/api_lists.py at 100 clients):
    every thread of the pool waited for a database connection while every connection was
    held by a request waiting for a thread.
    """

    def __init__(self, app: Any, limit: int) -> None:
        import asyncio

        self.app = app
        self.semaphore = asyncio.Semaphore(limit)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        async with self.semaphore:
            await self.app(scope, receive, send)
