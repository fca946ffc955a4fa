"""Staff pages: accounts (create, suspend, quotas, view as a viewer), hosts (add with the
pinned key's fingerprint, health, applies with diff and log, plan, reconcile), everything
failed, and the audit log."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import select, update

from panel.accounts import service as accounts
from panel.accounts.models import Account, AccountStatus
from panel.accounts.schemas import QUOTA_KEYS, AccountCreate, AccountUpdate
from panel.audit import service as audit
from panel.audit.models import AuditEvent
from panel.core.errors import Conflict, NotFound, ProblemError
from panel.core.objects import apply_changes
from panel.core.validation import host_key_fingerprint
from panel.hosts.models import Apply, Host
from panel.hosts.schemas import HostCreate
from panel.hosts.service import bump_generations
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
from panel.web.member_pages import KINDS, text

router = APIRouter(prefix="/staff", route_class=PageRoute, include_in_schema=False)


@router.get("")
def staff_home(web: WebDep) -> Response:
    web.require_staff()
    hosts = web.db.scalars(select(Host).order_by(Host.name)).all()
    failed = sum(len(rows) for _kind, rows in _failed(web))
    return render(web, "panel/staff/home.html", hosts=hosts, failed=failed,
                  fingerprint=host_key_fingerprint)


# -- accounts ------------------------------------------------------------------------------


def _accounts(web: Web, status: int = 200, **ctx: Any) -> Response:
    rows = web.db.scalars(select(Account).order_by(Account.slug)).all()
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {})
    return render(web, "panel/staff/accounts.html", status, accounts=rows, **ctx)


@router.get("/accounts")
def staff_accounts(web: WebDep) -> Response:
    web.require_staff()
    return _accounts(web)


@router.post("/accounts")
def create_account(web: WebDep, form: CsrfForm) -> Response:
    p = web.require_staff()
    values = {"slug": text(form, "slug"), "name": text(form, "name"), "email": text(form, "email")}
    try:
        body = AccountCreate(**values)
        account = accounts.create_account(
            web.db, slug=body.slug, name=body.name, email=body.email, quotas=body.quotas,
            defaults=web.request.app.state.settings.default_quotas,
        )
        audit.record(web.db, p, "create", account, body.model_dump())
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _accounts(web, 422, errors=errors_of(web.tr, exc), values=values)
    return redirect(f"/staff/accounts/{account.id}")


def _account(web: Web, account_id: int, status: int = 200, **ctx: Any) -> Response:
    account = web.db.get(Account, account_id)
    if account is None:
        raise NotFound("account")
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("done", None)
    return render(web, "panel/staff/account.html", status, account=account,
                  quota_keys=sorted(QUOTA_KEYS), statuses=[s.value for s in AccountStatus], **ctx)


@router.get("/accounts/{account_id}")
def staff_account(account_id: int, web: WebDep) -> Response:
    web.require_staff()
    return _account(web, account_id)


@router.post("/accounts/{account_id}")
def update_account(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Quotas and status, through the API's own schema (AccountUpdate)."""
    p = web.require_staff()
    account = web.db.get(Account, account_id)
    if account is None:
        raise NotFound("account")
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


@router.post("/accounts/{account_id}/view-as")
def view_as(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """See the account as a viewer would (read-only); the audit log records it."""
    p = web.require_staff()
    account = web.db.get(Account, account_id)
    if account is None or web.row is None:
        raise NotFound("account")
    audit.record(web.db, p, "impersonate", account, {"as": "viewer"}, account_id=account.id)
    web.row.view_as_account_id = account.id
    web.db.commit()
    return redirect(f"/accounts/{account.id}")


@router.post("/view-as/stop")
def stop_view_as(web: WebDep, form: CsrfForm) -> Response:
    if web.row is not None and web.row.view_as_account_id is not None:
        account_id = web.row.view_as_account_id
        web.row.view_as_account_id = None
        web.db.commit()
        return redirect(f"/staff/accounts/{account_id}")
    return redirect("/")


# -- hosts ---------------------------------------------------------------------------------


def _hosts(web: Web, status: int = 200, **ctx: Any) -> Response:
    rows = web.db.scalars(select(Host).order_by(Host.name)).all()
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"ssh_port": 22, "ssh_user": "root"})
    return render(web, "panel/staff/hosts.html", status, hosts=rows,
                  fingerprint=host_key_fingerprint, **ctx)


@router.get("/hosts")
def hosts(web: WebDep) -> Response:
    web.require_staff()
    return _hosts(web)


@router.post("/hosts")
def add_host(web: WebDep, form: CsrfForm) -> Response:
    """The API's HostCreate: a pinned key (its fingerprint is what staff compare), roles."""
    p = web.require_staff()
    values: dict[str, Any] = {
        "name": text(form, "name"), "address": text(form, "address"),
        "ssh_port": text(form, "ssh_port") or "22", "ssh_user": text(form, "ssh_user") or "root",
        "host_key": text(form, "host_key"), "roles": [str(r) for r in form.getlist("roles")],
    }
    php = lines(form.get("php_versions"))
    try:
        host_settings: dict[str, Any] = {"web_server": text(form, "web_server") or "nginx"}
        if php:
            host_settings["php_versions"] = php
        body = HostCreate(**values, settings=host_settings)
        if web.db.scalar(select(Host.id).where(Host.name == body.name)):
            raise Conflict(f"A host named {body.name} already exists.")
        host = Host(name=body.name, address=body.address, ssh_port=body.ssh_port,
                    ssh_user=body.ssh_user, host_key=body.host_key,
                    roles=[r.value for r in body.roles],
                    settings=body.settings.model_dump(mode="json"), enabled=body.enabled,
                    desired_generation=1)
        web.db.add(host)
        web.db.flush()
        audit.record(web.db, p, "create", host, body.model_dump(mode="json"))
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _hosts(web, 422, errors=errors_of(web.tr, exc), values=values)
    return redirect(f"/staff/hosts/{host.id}")


def _host(web: Web, host_id: int) -> Host:
    web.require_staff()
    host = web.db.get(Host, host_id)
    if host is None:
        raise NotFound("host")
    return host


@router.get("/hosts/{host_id}")
def host_page(host_id: int, web: WebDep) -> Response:
    host = _host(web, host_id)
    applies = web.db.scalars(
        select(Apply).where(Apply.host_id == host.id).order_by(Apply.id.desc()).limit(20)
    ).all()
    return render(web, "panel/staff/host.html", host=host, applies=applies,
                  fingerprint=host_key_fingerprint(host.host_key), plan=None, plan_error=None)


@router.post("/hosts/{host_id}/plan")
def host_plan(host_id: int, web: WebDep, form: CsrfForm) -> Response:
    """What a reconcile would change now (reads the host over SSH; changes nothing)."""
    host = _host(web, host_id)
    from panel.hosts.reconcile import plan_host
    from provisioners.transport import TransportError

    app = web.request.app
    plan, error = None, None
    try:
        _x, plan = plan_host(app.state.db, app.state.settings, host.id, app.state.plugins)
    except TransportError as exc:
        error = str(exc)
    applies = web.db.scalars(
        select(Apply).where(Apply.host_id == host.id).order_by(Apply.id.desc()).limit(20)
    ).all()
    return render(web, "panel/staff/host.html", host=host, applies=applies,
                  fingerprint=host_key_fingerprint(host.host_key), plan=plan, plan_error=error)


@router.post("/hosts/{host_id}/reconcile")
def reconcile(host_id: int, web: WebDep, form: CsrfForm) -> Response:
    """As the API's: mark the host dirty, clear its back-off, audit; the worker does the rest."""
    host = _host(web, host_id)
    bump_generations(web.db, [host.id])
    web.db.execute(update(Host).where(Host.id == host.id).values(retry_at=None))
    audit.record(web.db, web.p, "reconcile", host, {})
    web.db.commit()
    return redirect(f"/staff/hosts/{host.id}")


@router.get("/applies/{apply_id}")
def apply_page(apply_id: int, web: WebDep) -> Response:
    web.require_staff()
    apply = web.db.get(Apply, apply_id)
    if apply is None:
        raise NotFound("apply")
    host = web.db.get_one(Host, apply.host_id)
    return render(web, "panel/staff/apply.html", apply=apply, host=host)


# -- failed and audit ----------------------------------------------------------------------


def _failed(web: Web) -> list[tuple[str, list[Any]]]:
    out = []
    for kind in KINDS.values():
        rows = web.db.scalars(
            select(kind.model).where(kind.model.status == "failed").order_by(kind.model.id)
        ).all()
        if rows:
            out.append((kind.key, list(rows)))
    return out


@router.get("/failed")
def failed(web: WebDep) -> Response:
    web.require_staff()
    applies = web.db.scalars(
        select(Apply).where(Apply.result == "failed").order_by(Apply.id.desc()).limit(50)
    ).all()
    hosts = {h.id: h for h in web.db.scalars(select(Host))}
    return render(web, "panel/staff/failed.html", groups=_failed(web), applies=applies,
                  hosts=hosts, kinds=KINDS, https_failed=_https_failed(web))


def _https_failed(web: Web) -> list[Any]:
    """Sites whose last ACME order failed (they serve HTTP, or their older certificate)."""
    from panel.sites.models import Site, SiteCertificate

    return list(web.db.execute(
        select(Site.domain, Site.account_id, SiteCertificate.reason)
        .join(SiteCertificate, SiteCertificate.site_id == Site.id)
        .where(SiteCertificate.acme_state == "failed", Site.https == "acme")
        .order_by(Site.id)
    ).all())


@router.get("/audit")
def audit_log(web: WebDep) -> Response:
    web.require_staff()
    q = web.request.query_params
    stmt = select(AuditEvent)
    filters = {k: q.get(k, "").strip() for k in ("account", "action", "object_type", "actor",
                                                  "since")}
    if filters["account"]:
        acc = web.db.scalar(select(Account.id).where(Account.slug == filters["account"]))
        stmt = stmt.where(AuditEvent.account_id == (acc or -1))
    if filters["action"]:
        stmt = stmt.where(AuditEvent.action == filters["action"])
    if filters["object_type"]:
        stmt = stmt.where(AuditEvent.object_type == filters["object_type"])
    if filters["actor"]:
        stmt = stmt.where(AuditEvent.actor_email == filters["actor"].lower())
    if filters["since"]:
        try:
            day = dt.date.fromisoformat(filters["since"])
            stmt = stmt.where(AuditEvent.time >= dt.datetime.combine(day, dt.time(), dt.UTC))
        except ValueError:
            filters["since"] = ""
    events = web.db.scalars(stmt.order_by(AuditEvent.id.desc()).limit(200)).all()
    slugs = {row[0]: row[1] for row in web.db.execute(select(Account.id, Account.slug))}
    return render(web, "panel/staff/audit.html", events=events, filters=filters, slugs=slugs)
