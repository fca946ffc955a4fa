"""A member's mailboxes and mail aliases: create them, change them."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response

from panel.accounts.models import Account, Role
from panel.core.objects import (
    get_visible,
    get_writable,
)
from panel.mail import service as mail
from panel.mail.models import MailAlias, Mailbox
from panel.mail.schemas import MailAliasCreate, MailAliasUpdate, MailboxCreate, MailboxUpdate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    checked,
    create,
    lines,
    redirect,
    render,
    save,
    text,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _mailbox_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("mailbox", None)
    ctx.setdefault("values", {"quota_mb": 1024, "enabled": True})
    return render(web, "panel/mailbox_form.html", status, account=account, **ctx)


@router.get("/accounts/{account_id}/mailboxes/new")
def new_mailbox(account_id: int, web: WebDep) -> Response:
    return _mailbox_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/mailboxes")
def create_mailbox(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {
        "address": text(form, "address").lower(),
        "quota_mb": text(form, "quota_mb") or "1024",
        "enabled": checked(form, "enabled"),
    }
    mailbox = create(
        web,
        account,
        MailboxCreate,
        mail.create_mailbox,
        values,
        password=str(form.get("password") or ""),
    )
    if isinstance(mailbox, FormErrors):
        return _mailbox_form(web, account, 422, errors=mailbox, values=values)
    return redirect(
        f"/accounts/{account.id}",
        web._("Mailbox %(name)s created; it is pending until its host carries it.")
        % {"name": mailbox.address},
    )


@router.get("/mailboxes/{mailbox_id}")
def edit_mailbox(mailbox_id: int, web: WebDep) -> Response:
    mailbox = get_visible(web.db, web.p, Mailbox, mailbox_id)
    account = account_of(web, mailbox.account_id)
    values = {"address": mailbox.address, "quota_mb": mailbox.quota_mb, "enabled": mailbox.enabled}
    return _mailbox_form(web, account, mailbox=mailbox, values=values)


@router.post("/mailboxes/{mailbox_id}")
def update_mailbox(mailbox_id: int, web: WebDep, form: CsrfForm) -> Response:
    mailbox = get_writable(web.db, web.p, Mailbox, mailbox_id)
    account = account_of(web, mailbox.account_id)
    values: dict[str, Any] = {
        "quota_mb": text(form, "quota_mb") or None,
        "enabled": checked(form, "enabled"),
    }
    password = str(form.get("password") or "")
    errors = save(
        web,
        mailbox,
        mail.update_mailbox,
        lambda: MailboxUpdate(password=password or None, **values),
    )
    if errors is not None:
        values["address"] = mailbox.address
        return _mailbox_form(web, account, 422, mailbox=mailbox, errors=errors, values=values)
    return redirect(
        f"/accounts/{account.id}", web._("Mailbox %(name)s saved.") % {"name": mailbox.address}
    )


# -- mail aliases --------------------------------------------------------------------------


def _alias_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("alias", None)
    ctx.setdefault("values", {})
    return render(web, "panel/alias_form.html", status, account=account, **ctx)


@router.get("/accounts/{account_id}/aliases/new")
def new_alias(account_id: int, web: WebDep) -> Response:
    return _alias_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/aliases")
def create_alias(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {
        "address": text(form, "address").lower(),
        "destinations": lines(form.get("destinations")),
    }
    alias = create(web, account, MailAliasCreate, mail.create_alias, values)
    if isinstance(alias, FormErrors):
        return _alias_form(web, account, 422, errors=alias, values=values)
    return redirect(
        f"/accounts/{account.id}", web._("Alias %(name)s created.") % {"name": alias.address}
    )


@router.get("/aliases/{alias_id}")
def edit_alias(alias_id: int, web: WebDep) -> Response:
    alias = get_visible(web.db, web.p, MailAlias, alias_id)
    account = account_of(web, alias.account_id)
    values = {"address": alias.address, "destinations": alias.destinations}
    return _alias_form(web, account, alias=alias, values=values)


@router.post("/aliases/{alias_id}")
def update_alias(alias_id: int, web: WebDep, form: CsrfForm) -> Response:
    alias = get_writable(web.db, web.p, MailAlias, alias_id)
    account = account_of(web, alias.account_id)
    values: dict[str, Any] = {"destinations": lines(form.get("destinations"))}
    errors = save(web, alias, mail.update_alias, lambda: MailAliasUpdate(**values))
    if errors is not None:
        values["address"] = alias.address
        return _alias_form(web, account, 422, alias=alias, errors=errors, values=values)
    return redirect(
        f"/accounts/{account.id}", web._("Alias %(name)s saved.") % {"name": alias.address}
    )
