"""An account as a whole: the member's home and dashboard, the status endpoint that the page
script polls, deleting and enabling any of its objects (``KINDS``), and the staff's account
pages (create, suspend, quotas, view as a viewer). Every write goes through the domain
services; each kind's own forms are in its folder (``panel/sites/pages.py``, ...)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ValidationError
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from panel.accounts import service as accounts
from panel.accounts.models import Account, AccountStatus
from panel.accounts.schemas import QUOTA_KEYS, AccountCreate, AccountUpdate
from panel.audit import service as audit
from panel.core.db import ObjectStatus
from panel.core.errors import NotFound, ProblemError
from panel.core.objects import (
    apply_changes,
    finish_delete,
    get_visible,
    get_writable,
)
from panel.databases.models import Database, DatabaseUser
from panel.hosts.service import mark_deleting
from panel.lists.models import MailingList
from panel.mail import service as mail
from panel.mail.models import MailAlias, Mailbox
from panel.mail.schemas import MailboxUpdate
from panel.objects import pages as objects
from panel.objects.models import PluginObject
from panel.sites import service as sites
from panel.sites.models import Site
from panel.sites.schemas import SiteUpdate
from panel.usage.pages import storage
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    checked,
    errors_of,
    find_account,
    page_of,
    redirect,
    render,
    render_flashed,
    text,
    updated,
)
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@dataclass(frozen=True)
class Kind:
    """What the pages need to know about one kind of member object."""

    key: str
    model: Any
    label: str  # the object's name column
    archived: str  # what the host keeps when it goes (shown before deleting)
    options: tuple[Any, ...] = ()


KINDS: dict[str, Kind] = {
    k.key: k
    for k in (
        Kind(
            "site",
            Site,
            "domain",
            _(
                "Its files are archived on the web host (under /var/lib/konbit/archive/sites/) "
                "before the site stops answering."
            ),
            (selectinload(Site.aliases),),
        ),
        Kind(
            "mailbox",
            Mailbox,
            "address",
            _(
                "Its mail is archived on the mail host before the mailbox goes; new mail to this "
                "address is refused."
            ),
        ),
        Kind(
            "alias",
            MailAlias,
            "address",
            _("Nothing is archived: mail to this address will no longer be forwarded."),
        ),
        Kind(
            "list",
            MailingList,
            "address",
            _(
                "The list's archive and roster are kept on the lists host; posts to the address "
                "are refused."
            ),
        ),
        Kind(
            "database",
            Database,
            "name",
            _(
                "The host dumps the database into a compressed archive "
                "(under /var/lib/konbit/archive/databases/) before dropping it."
            ),
        ),
        Kind(
            "dbuser",
            DatabaseUser,
            "name",
            _("The login is dropped; its databases and their data stay."),
            (selectinload(DatabaseUser.databases),),
        ),
    )
}


# -- dashboard -----------------------------------------------------------------------------


@router.get("/")
def home(web: WebDep) -> Response:
    p = web.p
    if p.is_staff:
        return redirect("/staff")
    accounts = web.accounts()
    if len(accounts) == 1:
        return redirect(f"/accounts/{accounts[0].id}")
    return render(web, "panel/accounts.html", accounts=accounts)


def usage(web: Web, account: Account) -> list[dict[str, Any]]:
    """Counts against quotas (storage quotas: the sum of mailbox quotas)."""
    rows = []
    for quota, model, label in (
        ("sites", Site, _("Sites")),
        ("mailboxes", Mailbox, _("Mailboxes")),
        ("lists", MailingList, _("Mailing lists")),
        ("databases", Database, _("Databases")),
    ):
        used = web.db.scalar(
            select(func.count())
            .select_from(model)
            .where(model.account_id == account.id, model.status != ObjectStatus.deleting)
        )
        rows.append({"label": label, "used": used or 0, "limit": account.quotas.get(quota)})
    mail_mb = web.db.scalar(
        select(func.coalesce(func.sum(Mailbox.quota_mb), 0)).where(
            Mailbox.account_id == account.id, Mailbox.status != ObjectStatus.deleting
        )
    )
    rows.append(
        {
            "label": _("Mail storage given to mailboxes (MB)"),
            "used": int(mail_mb or 0),
            "limit": account.quotas.get("mail_mb"),
        }
    )
    for row in rows:
        limit, used = row["limit"], int(row["used"] or 0)
        row["percent"] = min(100, round(100 * used / int(limit))) if limit else 0
    return rows


@router.get("/accounts/{account_id}")
def dashboard(account_id: int, web: WebDep) -> Response:
    account = account_of(web, account_id)

    def of(model: Any, *opts: Any) -> list[Any]:
        return list(
            web.db.scalars(
                select(model)
                .options(*opts)
                .where(model.account_id == account.id)
                .order_by(model.id)
            )
        )

    return render_flashed(
        web,
        "panel/dashboard.html",
        account=account,
        usage=usage(web, account),
        storage=storage(web, account),
        sites=of(Site, selectinload(Site.aliases)),
        mailboxes=of(Mailbox),
        aliases=of(MailAlias),
        lists=of(MailingList),
        databases=of(Database),
        dbusers=of(DatabaseUser, selectinload(DatabaseUser.databases)),
        object_kinds=objects.kind_links(web, account),
        writable=web.can_write(account.id),
        role=web.p.role(account.id),
    )


@router.get("/status")
def status(web: WebDep) -> Response:
    """Where the given objects stand (``?o=site:3&o=mailbox:7``), for the page script."""
    out: dict[str, Any] = {}
    for key in web.request.query_params.getlist("o")[:100]:
        kind_name, _sep, raw_id = key.partition(":")
        kind = KINDS.get(kind_name)
        plugin_kind = kind is None and kind_name in objects.stored_kind_names()
        if (kind is None and not plugin_kind) or not raw_id.isdigit():
            continue
        try:
            obj = get_visible(web.db, web.p, kind.model if kind else PluginObject, int(raw_id))
            if plugin_kind and obj.kind != kind_name:
                raise NotFound()
        except NotFound:
            out[key] = {"status": "gone", "text": web._("deleted"), "reason": ""}
            continue
        out[key] = {
            "status": obj.status,
            "text": web._(STATUS_TEXT.get(obj.status, obj.status)),
            "reason": obj.status_reason or "",
        }
    return JSONResponse(out, headers={"Cache-Control": "no-store"})


STATUS_TEXT = {
    "pending": _("pending"),
    "active": _("active"),
    "failed": _("failed"),
    "deleting": _("deleting"),
}


# -- delete and enable/disable, for every kind ---------------------------------------------


def load(web: Web, kind_name: str, obj_id: int, write: bool) -> tuple[Kind, Any]:
    kind = KINDS.get(kind_name)
    if kind is None:
        raise NotFound()
    get = get_writable if write else get_visible
    return kind, get(web.db, web.p, kind.model, obj_id, kind.options)


@router.get("/delete/{kind_name}/{obj_id}")
def confirm_delete(kind_name: str, obj_id: int, web: WebDep) -> Response:
    kind, obj = load(web, kind_name, obj_id, write=False)
    return render(
        web,
        "panel/confirm_delete.html",
        kind=kind,
        obj=obj,
        name=getattr(obj, kind.label),
        errors=FormErrors(),
    )


@router.post("/delete/{kind_name}/{obj_id}")
def delete(kind_name: str, obj_id: int, web: WebDep, form: CsrfForm) -> Response:
    kind, obj = load(web, kind_name, obj_id, write=False)
    name = getattr(obj, kind.label)
    try:
        kind, obj = load(web, kind_name, obj_id, write=True)
        mark_deleting(web.db, obj)
        finish_delete(web.db, web.p, obj, name)
    except ProblemError as exc:
        if exc.status == 404:
            raise
        web.db.rollback()
        return render(
            web,
            "panel/confirm_delete.html",
            exc.status,
            kind=kind,
            obj=obj,
            name=name,
            errors=errors_of(web.tr, exc),
        )
    return redirect(f"/accounts/{obj.account_id}", web._("Deleting %(name)s.") % {"name": name})


@router.post("/enabled/{kind_name}/{obj_id}")
def set_enabled(kind_name: str, obj_id: int, web: WebDep, form: CsrfForm) -> Response:
    if kind_name not in ("site", "mailbox"):
        raise NotFound()
    _kind, obj = load(web, kind_name, obj_id, write=True)
    on = checked(form, "enabled")
    body: BaseModel = SiteUpdate(enabled=on) if kind_name == "site" else MailboxUpdate(enabled=on)
    changes = (
        sites.update_site(web.db, obj, body)  # type: ignore[arg-type]
        if kind_name == "site"
        else mail.update_mailbox(web.db, obj, body)  # type: ignore[arg-type]
    )
    updated(web, obj, changes)
    name = getattr(obj, KINDS[kind_name].label)
    msg = web._("%(name)s is enabled.") if on else web._("%(name)s is disabled.")
    return redirect(f"/accounts/{obj.account_id}", msg % {"name": name})


# -- staff: accounts -----------------------------------------------------------------------


def _accounts(web: Web, status: int = 200, **ctx: Any) -> Response:
    page = page_of(web, select(Account), Account.id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {})
    return render(web, "panel/staff/accounts.html", status, accounts=page.rows, page=page, **ctx)


@router.get("/staff/accounts")
def staff_accounts(web: WebDep) -> Response:
    web.require_staff()
    return _accounts(web)


@router.post("/staff/accounts")
def create_account(web: WebDep, form: CsrfForm) -> Response:
    p = web.require_staff()
    values = {"slug": text(form, "slug"), "name": text(form, "name"), "email": text(form, "email")}
    try:
        body = AccountCreate(**values)
        account = accounts.create_account(
            web.db,
            slug=body.slug,
            name=body.name,
            email=body.email,
            quotas=body.quotas,
            defaults=web.request.app.state.settings.default_quotas,
        )
        audit.record(web.db, p, "create", account, body.model_dump())
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _accounts(web, 422, errors=errors_of(web.tr, exc), values=values)
    return redirect(f"/staff/accounts/{account.id}")


def _account(web: Web, account_id: int, status: int = 200, **ctx: Any) -> Response:
    account = find_account(web, account_id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("done", None)
    return render(
        web,
        "panel/staff/account.html",
        status,
        account=account,
        quota_keys=sorted(QUOTA_KEYS),
        statuses=[s.value for s in AccountStatus],
        **ctx,
    )


@router.get("/staff/accounts/{account_id}")
def staff_account(account_id: int, web: WebDep) -> Response:
    web.require_staff()
    return _account(web, account_id)


@router.post("/staff/accounts/{account_id}")
def update_account(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Quotas and status, through the API's own schema (AccountUpdate)."""
    p = web.require_staff()
    account = find_account(web, account_id)
    try:
        quotas = {k: text(form, f"quota_{k}") for k in QUOTA_KEYS if text(form, f"quota_{k}")}
        body = AccountUpdate.model_validate(
            {"quotas": quotas, "status": text(form, "status") or None}
        )
        values: dict[str, Any] = {"quotas": {**account.quotas, **(body.quotas or {})}}
        if body.status is not None:
            values["status"] = body.status
        changes = apply_changes(account, values)
        if changes:
            audit.record(web.db, p, "update", account, changes)
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _account(web, account_id, 422, errors=errors_of(web.tr, exc))
    return _account(web, account_id, done=web._("Saved."))


@router.post("/staff/accounts/{account_id}/view-as")
def view_as(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """See the account as a viewer would (read-only); the audit log records it."""
    p = web.require_staff()
    account = find_account(web, account_id)
    if web.row is None:
        raise NotFound("account")
    audit.record(web.db, p, "impersonate", account, {"as": "viewer"}, account_id=account.id)
    web.row.view_as_account_id = account.id
    web.db.commit()
    return redirect(f"/accounts/{account.id}")


@router.post("/staff/view-as/stop")
def stop_view_as(web: WebDep, form: CsrfForm) -> Response:
    if web.row is not None and web.row.view_as_account_id is not None:
        account_id = web.row.view_as_account_id
        web.row.view_as_account_id = None
        web.db.commit()
        return redirect(f"/staff/accounts/{account_id}")
    return redirect("/")
