"""``/api/v1/lists``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

from panel.audit import service as audit
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
    text_match,
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
from panel.hosts.service import mark_deleting
from panel.lists import service
from panel.lists.models import ListMember, MailingList
from panel.lists.schemas import (
    ImportOut,
    ListCreate,
    ListOut,
    ListUpdate,
    MemberCreate,
    MemberImport,
    MemberOut,
)

router = APIRouter(prefix="/lists", tags=["lists"])


@router.get("", response_model=Page[ListOut], responses=READ_ERRORS)
def list_lists(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the mailing lists you can see."""
    stmt = apply_filters(
        principal.fence(select(MailingList), MailingList.account_id),
        MailingList,
        params,
        MailingList.address,
    )
    rows, cursor = paginate(session, stmt, MailingList.id, params.cursor, params.limit)
    return Page(items=[ListOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post("", status_code=201, response_model=ListOut, responses=WRITE_ERRORS)
def create_list(
    body: ListCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: Annotated[Idempotency, Depends(get_idempotency)],
) -> Any:
    """Create a mailing list with its owners and subscription policy."""
    if replay := idem.replay(session, principal, body):
        return replay
    mlist = service.create_list(session, principal, body)
    out = ListOut.model_validate(mlist)
    return finish_create(
        session,
        principal,
        idem,
        body,
        mlist,
        out,
        response,
        body.model_dump(exclude={"account_id"}, exclude_none=True),
    )


@router.get("/{list_id}", response_model=ListOut, responses=READ_ERRORS)
def get_list(list_id: int, session: SessionDep, principal: PrincipalDep, response: Response) -> Any:
    """One mailing list."""
    mlist = get_visible(session, principal, MailingList, list_id)
    set_etag(response, mlist)
    return ListOut.model_validate(mlist)


@router.patch("/{list_id}", response_model=ListOut, responses=WRITE_ERRORS)
def update_list(
    list_id: int,
    body: ListUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change owners, policy or settings (honours If-Match); settings merge key by key."""
    mlist = get_writable(session, principal, MailingList, list_id)
    check_if_match(if_match, mlist)
    changes = service.update_list(session, mlist, body)
    finish_update(session, principal, mlist, changes, response)
    return ListOut.model_validate(mlist)


@router.delete("/{list_id}", status_code=202, response_model=ListOut, responses=WRITE_ERRORS)
def delete_list(
    list_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete a list: its archive and roster are kept on the host."""
    mlist = get_writable(session, principal, MailingList, list_id)
    check_if_match(if_match, mlist)
    mark_deleting(session, mlist)
    finish_delete(session, principal, mlist, mlist.address)
    return ListOut.model_validate(mlist)


@router.get("/{list_id}/members", response_model=Page[MemberOut], responses=READ_ERRORS)
def list_members(
    list_id: int, session: SessionDep, principal: PrincipalDep, params: ListDep
) -> Any:
    """The list's roster (members, owners and moderators added here); ``q`` matches
    addresses."""
    mlist = get_visible(session, principal, MailingList, list_id)
    stmt = select(ListMember).where(ListMember.list_id == mlist.id)
    if params.q is not None:
        stmt = stmt.where(text_match(ListMember.email, params.q))
    rows, cursor = paginate(session, stmt, ListMember.id, params.cursor, params.limit)
    return Page(items=[MemberOut.model_validate(r) for r in rows], next_cursor=cursor)


@router.post(
    "/{list_id}/members", status_code=201, response_model=MemberOut, responses=WRITE_ERRORS
)
def add_member(
    list_id: int, body: MemberCreate, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Subscribe one address (no confirmation mail: the list's managers vouch for it)."""
    mlist = get_writable(session, principal, MailingList, list_id)
    member = service.add_member(session, mlist, body.email, body.role)
    audit.record(session, principal, "update", mlist, {"members": {"added": [body.email]}})
    session.commit()
    return MemberOut.model_validate(member)


@router.post(
    "/{list_id}/members/import", status_code=200, response_model=ImportOut, responses=WRITE_ERRORS
)
def import_members(
    list_id: int, body: MemberImport, session: SessionDep, principal: PrincipalDep
) -> Any:
    """Subscribe many addresses at once, pre-approved and without confirmation mails;
    addresses already on the roster are counted, not an error."""
    mlist = get_writable(session, principal, MailingList, list_id)
    rows, already = service.add_members(session, mlist, body.emails, body.role)
    if rows:
        audit.record(session, principal, "update", mlist, {"members": {"imported": len(rows)}})
    session.commit()
    return ImportOut(added=len(rows), already=already)


@router.delete(
    "/{list_id}/members/{member_id}",
    status_code=204,
    response_class=Response,
    responses=WRITE_ERRORS,
)
def remove_member(
    list_id: int, member_id: int, session: SessionDep, principal: PrincipalDep
) -> Response:
    """Unsubscribe one roster entry."""
    mlist = get_writable(session, principal, MailingList, list_id)
    member = service.get_member(session, mlist, member_id)
    email = member.email
    service.remove_member(session, mlist, member)
    audit.record(session, principal, "update", mlist, {"members": {"removed": [email]}})
    session.commit()
    return Response(status_code=204)
