"""A member's pages: the account dashboard, sites, mailboxes and mail aliases, and the
status endpoint that the page script polls. Every write goes through the domain services."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload
from starlette.datastructures import FormData

from panel.accounts.models import Account, Role
from panel.audit import service as audit
from panel.core.db import ObjectStatus, utcnow
from panel.core.errors import NotFound, ProblemError
from panel.core.objects import (
    finish_delete,
    finish_update,
    get_visible,
    get_writable,
)
from panel.databases.models import Database, DatabaseUser
from panel.hosts.models import Host, HostRole
from panel.hosts.service import mark_deleting
from panel.lists.models import MailingList
from panel.mail import service as mail
from panel.mail.models import MailAlias, Mailbox
from panel.mail.schemas import MailAliasCreate, MailAliasUpdate, MailboxCreate, MailboxUpdate
from panel.sites import service as sites
from panel.sites.models import HttpsMode, Site
from panel.sites.schemas import SiteCreate, SiteUpdate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    attempt,
    errors_of,
    lines,
    redirect,
    render,
    render_flashed,
)
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")


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
            _("Its files are archived on the web host (under /var/lib/konbit/archive/sites/) "
              "before the site stops answering."),
            (selectinload(Site.aliases),),
        ),
        Kind(
            "mailbox",
            Mailbox,
            "address",
            _("Its mail is archived on the mail host before the mailbox goes; new mail to this "
              "address is refused."),
        ),
        Kind("alias", MailAlias, "address", _("Nothing is archived: mail to this address "
                                              "will no longer be forwarded.")),
        Kind(
            "list",
            MailingList,
            "address",
            _("The list's archive and roster are kept on the lists host; posts to the address "
              "are refused."),
        ),
        Kind(
            "database",
            Database,
            "name",
            _("The host dumps the database into a compressed archive "
              "(under /var/lib/konbit/archive/databases/) before dropping it."),
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


def find_account(web: Web, account_id: int) -> Account:
    account = web.db.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    return account


def account_of(web: Web, account_id: int, needed: Role = Role.viewer) -> Account:
    web.p.require(account_id, needed)
    return find_account(web, account_id)


def created(web: Web, obj: Any, fields: dict[str, Any]) -> None:
    """The tail of a create, as the API's: an audit event, then the commit."""
    audit.record(web.db, web.p, "create", obj, {k: {"new": _plain(v)} for k, v in fields.items()})
    web.db.commit()


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, str | int | float | bool) or value is None:
        return value
    return str(value)


def updated(web: Web, obj: Any, changes: dict[str, Any]) -> None:
    finish_update(web.db, web.p, obj, changes, Response())


def create(
    web: Web,
    account: Account,
    schema: type[BaseModel],
    make: Callable[..., Any],
    values: dict[str, Any],
    **secret: Any,
) -> Any:
    """Create one object in ``account`` through its domain service, as the API does (check,
    create, audit, commit): the object, or the form's errors (see ``attempt``). ``secret``
    fields (passwords) go to the service, never into the audit."""

    def write() -> Any:
        body = schema(account_id=account.id, **secret, **values)
        obj = make(web.db, web.p, body)
        created(web, obj, body.model_dump(exclude={"account_id", *secret}))
        return obj

    return attempt(web, write)


def save(
    web: Web, obj: Any, change: Callable[[Any, Any, Any], dict[str, Any]],
    body: Callable[[], BaseModel],
) -> FormErrors | None:
    """Change one object through its domain service (``change(db, obj, body())``), as the
    API does: None, or the form's errors (see ``attempt``)."""
    result = attempt(web, lambda: updated(web, obj, change(web.db, obj, body())))
    return result if isinstance(result, FormErrors) else None


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
        {"label": _("Mail storage given to mailboxes (MB)"), "used": int(mail_mb or 0),
         "limit": account.quotas.get("mail_mb")}
    )
    for row in rows:
        limit, used = row["limit"], int(row["used"] or 0)
        row["percent"] = min(100, round(100 * used / int(limit))) if limit else 0
    return rows


STORAGE_METRICS = ("disk_bytes", "mail_bytes", "db_bytes", "list_archive_bytes")


def storage(web: Web, account: Account) -> dict[str, Any]:
    """Measured storage against the disk quota, and the last 30 days as two small bar
    charts (storage peak and HTTP requests per day), drawn by the server as SVG."""
    from panel.core.settings import Settings
    from panel.usage import service as usage_service
    from panel.usage.models import AccountUsage

    measured = web.db.get(AccountUsage, account.id)
    settings: Settings = web.request.app.state.settings
    quota_mb = account.quotas.get("disk_mb", settings.default_quotas.get("disk_mb"))
    end = dt.datetime.combine(utcnow().date() + dt.timedelta(days=1), dt.time(), dt.UTC)
    start = end - dt.timedelta(days=30)
    rows = usage_service.aggregate(
        web.db, [account.id], start, end, "day", [*STORAGE_METRICS, "http_requests"]
    )
    days = [(start + dt.timedelta(days=i)).date().isoformat() for i in range(30)]
    per_day: dict[str, dict[str, int]] = {d: {"storage": 0, "requests": 0} for d in days}
    for row in rows:
        if row["period"] in per_day:
            key = "requests" if row["metric"] == "http_requests" else "storage"
            per_day[row["period"]][key] += int(row["sum"] if key == "requests" else row["peak"])
    charts = {}
    for key in ("storage", "requests"):
        values = [per_day[d][key] for d in days]
        top = max(values) or 1
        charts[key] = {
            "bars": [
                {"x": i * 10, "h": round(60 * v / top, 1), "day": d, "value": v}
                for i, (d, v) in enumerate(zip(days, values, strict=True))
            ],
            "max": top,
            "any": any(values),
        }
    used = measured.disk_bytes if measured else None
    limit = int(quota_mb) * 1024 * 1024 if quota_mb is not None else None
    return {
        "used": used,
        "limit": limit,
        "percent": min(100, round(100 * used / limit)) if used is not None and limit else 0,
        "over_since": measured.over_quota_since if measured else None,
        "measured_at": measured.updated_at if measured else None,
        "charts": charts,
    }


@router.get("/accounts/{account_id}")
def dashboard(account_id: int, web: WebDep) -> Response:
    account = account_of(web, account_id)

    def of(model: Any, *opts: Any) -> list[Any]:
        return list(
            web.db.scalars(
                select(model).options(*opts).where(model.account_id == account.id)
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
        if kind is None or not raw_id.isdigit():
            continue
        try:
            obj = get_visible(web.db, web.p, kind.model, int(raw_id))
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
        web, "panel/confirm_delete.html", kind=kind, obj=obj, name=getattr(obj, kind.label),
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
        return render(web, "panel/confirm_delete.html", exc.status, kind=kind, obj=obj, name=name,
                      errors=errors_of(web.tr, exc))
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


# -- sites ---------------------------------------------------------------------------------


def php_versions(web: Web) -> list[str]:
    versions: set[str] = set()
    for host in web.db.scalars(select(Host).where(Host.enabled.is_(True))):
        if HostRole.web.value in host.roles:
            versions.update(host.settings.get("php_versions") or [])
    return sorted(versions)


def _site_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("site", None)
    ctx.setdefault("values", {})
    return render(web, "panel/site_form.html", status, account=account,
                  php_versions=php_versions(web), https_modes=[m.value for m in HttpsMode], **ctx)


def _site_values(form: FormData) -> dict[str, Any]:
    return {
        "domain": text(form, "domain").lower(),
        "aliases": lines(form.get("aliases")),
        "php": text(form, "php") or None,
        "https": text(form, "https") or "off",
        "enabled": checked(form, "enabled"),
    }


@router.get("/accounts/{account_id}/sites/new")
def new_site(account_id: int, web: WebDep) -> Response:
    account = account_of(web, account_id, Role.manager)
    return _site_form(web, account, values={"enabled": True, "https": "off"})


@router.post("/accounts/{account_id}/sites")
def create_site(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values = _site_values(form)
    site = create(web, account, SiteCreate, sites.create_site, values)
    if isinstance(site, FormErrors):
        return _site_form(web, account, 422, errors=site, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Site %(name)s created; it is pending until its host serves it.")
                    % {"name": site.domain})


@router.get("/sites/{site_id}")
def edit_site(site_id: int, web: WebDep) -> Response:
    site = get_visible(web.db, web.p, Site, site_id, KINDS["site"].options)
    account = account_of(web, site.account_id)
    values = {"domain": site.domain, "aliases": [a.name for a in site.aliases], "php": site.php,
              "https": site.https, "enabled": site.enabled}
    return _site_form(web, account, site=site, values=values)


@router.post("/sites/{site_id}")
def update_site(site_id: int, web: WebDep, form: CsrfForm) -> Response:
    site = get_writable(web.db, web.p, Site, site_id, KINDS["site"].options)
    account = account_of(web, site.account_id)
    values = _site_values(form)
    values.pop("domain")
    errors = save(web, site, sites.update_site, lambda: SiteUpdate(**values))
    if errors is not None:
        values["domain"] = site.domain
        return _site_form(web, account, 422, site=site, errors=errors, values=values)
    saved = web._("Site %(name)s saved.") % {"name": site.domain}
    return redirect(f"/accounts/{account.id}", saved)


# -- mailboxes -----------------------------------------------------------------------------


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
    mailbox = create(web, account, MailboxCreate, mail.create_mailbox, values,
                     password=str(form.get("password") or ""))
    if isinstance(mailbox, FormErrors):
        return _mailbox_form(web, account, 422, errors=mailbox, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Mailbox %(name)s created; it is pending until its host carries it.")
                    % {"name": mailbox.address})


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
    values: dict[str, Any] = {"quota_mb": text(form, "quota_mb") or None,
                              "enabled": checked(form, "enabled")}
    password = str(form.get("password") or "")
    errors = save(web, mailbox, mail.update_mailbox,
                  lambda: MailboxUpdate(password=password or None, **values))
    if errors is not None:
        values["address"] = mailbox.address
        return _mailbox_form(web, account, 422, mailbox=mailbox, errors=errors, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Mailbox %(name)s saved.") % {"name": mailbox.address})


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
    values: dict[str, Any] = {"address": text(form, "address").lower(),
                              "destinations": lines(form.get("destinations"))}
    alias = create(web, account, MailAliasCreate, mail.create_alias, values)
    if isinstance(alias, FormErrors):
        return _alias_form(web, account, 422, errors=alias, values=values)
    return redirect(f"/accounts/{account.id}",
                    web._("Alias %(name)s created.") % {"name": alias.address})


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
    return redirect(f"/accounts/{account.id}",
                    web._("Alias %(name)s saved.") % {"name": alias.address})
