"""``/api/v1/mailboxes`` and ``/api/v1/mail-aliases``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Response
from sqlalchemy import select

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
from panel.hosts.service import mark_deleting
from panel.mail import service
from panel.mail.models import MailAlias, Mailbox
from panel.mail.schemas import (
    MailAliasCreate,
    MailAliasOut,
    MailAliasUpdate,
    MailboxCreate,
    MailboxOut,
    MailboxUpdate,
)

mailboxes = APIRouter(prefix="/mailboxes", tags=["mailboxes"])
aliases = APIRouter(prefix="/mail-aliases", tags=["mail-aliases"])
IdemDep = Annotated[Idempotency, Depends(get_idempotency)]


@mailboxes.get("", response_model=Page[MailboxOut], responses=READ_ERRORS)
def list_mailboxes(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the mailboxes you can see."""
    stmt = apply_filters(
        principal.fence(select(Mailbox), Mailbox.account_id), Mailbox, params, Mailbox.address
    )
    rows, cursor = paginate(session, stmt, Mailbox.id, params.cursor, params.limit)
    return Page(items=[MailboxOut.model_validate(r) for r in rows], next_cursor=cursor)


@mailboxes.post("", status_code=201, response_model=MailboxOut, responses=WRITE_ERRORS)
def create_mailbox(
    body: MailboxCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create a mailbox; the password is stored only as a hash dovecot verifies."""
    if replay := idem.replay(session, principal, body):
        return replay
    mailbox = service.create_mailbox(session, principal, body)
    out = MailboxOut.model_validate(mailbox)
    return finish_create(
        session,
        principal,
        idem,
        body,
        mailbox,
        out,
        response,
        body.model_dump(exclude={"account_id", "password"}),
    )


@mailboxes.get("/{mailbox_id}", response_model=MailboxOut, responses=READ_ERRORS)
def get_mailbox(
    mailbox_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One mailbox."""
    mailbox = get_visible(session, principal, Mailbox, mailbox_id)
    set_etag(response, mailbox)
    return MailboxOut.model_validate(mailbox)


@mailboxes.patch("/{mailbox_id}", response_model=MailboxOut, responses=WRITE_ERRORS)
def update_mailbox(
    mailbox_id: int,
    body: MailboxUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change the password, quota or enabled flag (honours If-Match)."""
    mailbox = get_writable(session, principal, Mailbox, mailbox_id)
    check_if_match(if_match, mailbox)
    changes = service.update_mailbox(session, mailbox, body)
    finish_update(session, principal, mailbox, changes, response)
    return MailboxOut.model_validate(mailbox)


@mailboxes.delete(
    "/{mailbox_id}", status_code=202, response_model=MailboxOut, responses=WRITE_ERRORS
)
def delete_mailbox(
    mailbox_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete a mailbox: its mail is archived on the host first."""
    mailbox = get_writable(session, principal, Mailbox, mailbox_id)
    check_if_match(if_match, mailbox)
    mark_deleting(session, mailbox)
    finish_delete(session, principal, mailbox, mailbox.address)
    return MailboxOut.model_validate(mailbox)


@aliases.get("", response_model=Page[MailAliasOut], responses=READ_ERRORS)
def list_aliases(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List the mail aliases you can see."""
    stmt = apply_filters(
        principal.fence(select(MailAlias), MailAlias.account_id),
        MailAlias,
        params,
        MailAlias.address,
    )
    rows, cursor = paginate(session, stmt, MailAlias.id, params.cursor, params.limit)
    return Page(items=[MailAliasOut.model_validate(r) for r in rows], next_cursor=cursor)


@aliases.post("", status_code=201, response_model=MailAliasOut, responses=WRITE_ERRORS)
def create_alias(
    body: MailAliasCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: IdemDep,
) -> Any:
    """Create an alias forwarding to one or more addresses (`@domain` is the catch-all)."""
    if replay := idem.replay(session, principal, body):
        return replay
    alias = service.create_alias(session, principal, body)
    out = MailAliasOut.model_validate(alias)
    return finish_create(
        session,
        principal,
        idem,
        body,
        alias,
        out,
        response,
        body.model_dump(exclude={"account_id"}),
    )


@aliases.get("/{alias_id}", response_model=MailAliasOut, responses=READ_ERRORS)
def get_alias(
    alias_id: int, session: SessionDep, principal: PrincipalDep, response: Response
) -> Any:
    """One mail alias."""
    alias = get_visible(session, principal, MailAlias, alias_id)
    set_etag(response, alias)
    return MailAliasOut.model_validate(alias)


@aliases.patch("/{alias_id}", response_model=MailAliasOut, responses=WRITE_ERRORS)
def update_alias(
    alias_id: int,
    body: MailAliasUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Replace the destinations (honours If-Match)."""
    alias = get_writable(session, principal, MailAlias, alias_id)
    check_if_match(if_match, alias)
    changes = service.update_alias(session, alias, body)
    finish_update(session, principal, alias, changes, response)
    return MailAliasOut.model_validate(alias)


@aliases.delete("/{alias_id}", status_code=202, response_model=MailAliasOut, responses=WRITE_ERRORS)
def delete_alias(
    alias_id: int, session: SessionDep, principal: PrincipalDep, if_match: IfMatch = None
) -> Any:
    """Delete an alias."""
    alias = get_writable(session, principal, MailAlias, alias_id)
    check_if_match(if_match, alias)
    mark_deleting(session, alias)
    finish_delete(session, principal, alias, alias.address)
    return MailAliasOut.model_validate(alias)
