"""``/api/v1/objects/{kind}``: objects of the kinds installed plugins declare."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from panel.core.errors import NotFound
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
from panel.objects import service
from panel.objects.models import PluginObject
from panel.objects.schemas import ObjectCreate, ObjectOut, ObjectUpdate, without_secrets

router = APIRouter(prefix="/objects", tags=["objects"])


def _one(
    session: SessionDep, principal: PrincipalDep, kind: str, obj_id: int, write: bool
) -> PluginObject:
    service.kind_of(kind)
    get = get_writable if write else get_visible
    obj = get(session, principal, PluginObject, obj_id)
    if obj.kind != kind:
        raise NotFound()
    return obj


@router.get("/{kind}", response_model=Page[ObjectOut], responses=READ_ERRORS)
def list_objects(kind: str, session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the objects of one plugin-declared kind you can see."""
    service.kind_of(kind)
    stmt = apply_filters(
        principal.fence(select(PluginObject), PluginObject.account_id).where(
            PluginObject.kind == kind
        ),
        PluginObject,
        params,
        PluginObject.name,
    )
    rows, cursor = paginate(session, stmt, PluginObject.id, params.cursor, params.limit)
    return Page(items=[ObjectOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("/{kind}", status_code=201, response_model=ObjectOut, responses=WRITE_ERRORS)
def create_object(
    kind: str,
    body: ObjectCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: Annotated[Idempotency, Depends(get_idempotency)],
) -> Any:
    """Create an object; its spec is checked by the plugin's own model (422 names the field)."""
    declared = service.kind_of(kind)
    if replay := idem.replay(session, principal, body):
        return replay
    obj = service.create(session, principal, declared, body)
    out = ObjectOut.model_validate(obj)
    return finish_create(
        session,
        principal,
        idem,
        body,
        obj,
        out,
        response,
        {"kind": kind, "name": obj.name, "spec": without_secrets(obj.spec)},
    )


@router.get("/{kind}/{obj_id}", response_model=ObjectOut, responses=READ_ERRORS)
def get_object(
    kind: str, obj_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One object."""
    obj = _one(session, principal, kind, obj_id, write=False)
    set_etag(response, obj)
    return ObjectOut.model_validate(obj)


@router.patch("/{kind}/{obj_id}", response_model=ObjectOut, responses=WRITE_ERRORS)
def update_object(
    kind: str,
    obj_id: int,
    body: ObjectUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Replace an object's spec (honours If-Match)."""
    obj = _one(session, principal, kind, obj_id, write=True)
    check_if_match(if_match, obj)
    changes = service.update(session, principal, obj, body)
    finish_update(session, principal, obj, changes, response)
    return ObjectOut.model_validate(obj)


@router.delete(
    "/{kind}/{obj_id}", status_code=202, response_model=ObjectOut, responses=WRITE_ERRORS
)
def delete_object(
    kind: str, obj_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete an object: its hosts drop it, then the row goes."""
    obj = _one(session, principal, kind, obj_id, write=True)
    check_if_match(if_match, obj)
    service.mark_deleting(session, obj)
    finish_delete(session, principal, obj, obj.name)
    return ObjectOut.model_validate(obj)
