"""Staff pages: the staff home, hosts (add with the pinned key's fingerprint, health,
applies with diff and log, plan, reconcile) and everything failed. Staff's account pages
are in ``panel.accounts.account_pages``, the audit log in ``panel.audit.pages``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import select, update

from panel.accounts.account_pages import KINDS
from panel.audit import service as audit
from panel.core.errors import NotFound, ProblemError
from panel.core.validation import host_key_fingerprint
from panel.databases.models import Engine
from panel.hosts import service as host_service
from panel.hosts.models import Apply, Host
from panel.hosts.schemas import HostCreate, HostSettings, HostUpdate
from panel.hosts.service import bump_generations
from panel.sites.models import Site, SiteCertificate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    errors_of,
    lines,
    page_of,
    redirect,
    render,
    text,
    updated,
)
from provisioners.registry import installed

router = APIRouter(prefix="/staff", route_class=PageRoute, include_in_schema=False)


@router.get("")
def staff_home(web: WebDep) -> Response:
    web.require_staff()
    hosts = web.db.scalars(select(Host).order_by(Host.name)).all()
    failed = sum(len(rows) for _kind, rows in _failed(web))
    return render(
        web, "panel/staff/home.html", hosts=hosts, failed=failed, fingerprint=host_key_fingerprint
    )


# -- hosts ---------------------------------------------------------------------------------


def _hosts(web: Web, status: int = 200, **ctx: Any) -> Response:
    page = page_of(web, select(Host), Host.id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"ssh_port": 22, "ssh_user": "root"})
    return render(
        web,
        "panel/staff/hosts.html",
        status,
        hosts=page.rows,
        page=page,
        fingerprint=host_key_fingerprint,
        **ctx,
    )


@router.get("/hosts")
def hosts(web: WebDep) -> Response:
    web.require_staff()
    return _hosts(web)


@router.post("/hosts")
def add_host(web: WebDep, form: CsrfForm) -> Response:
    """The API's HostCreate: a pinned key (its fingerprint is what staff compare), roles."""
    p = web.require_staff()
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "address": text(form, "address"),
        "ssh_port": text(form, "ssh_port") or "22",
        "ssh_user": text(form, "ssh_user") or "root",
        "host_key": text(form, "host_key"),
        "roles": [str(r) for r in form.getlist("roles")],
    }
    php = lines(form.get("php_versions"))
    try:
        host_settings: dict[str, Any] = {"web_server": text(form, "web_server") or "nginx"}
        if php:
            host_settings["php_versions"] = php
        body = HostCreate(**values, settings=host_settings)
        host = host_service.add_host(web.db, body)
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


def _host_page(web: Web, host: Host, plan: Any = None, plan_error: str | None = None) -> Response:
    applies = page_of(
        web, select(Apply).where(Apply.host_id == host.id), Apply.id, newest_first=True, size=20
    )
    return render(
        web,
        "panel/staff/host.html",
        host=host,
        applies=applies.rows,
        page=applies,
        fingerprint=host_key_fingerprint(host.host_key),
        plan=plan,
        plan_error=plan_error,
    )


@router.get("/hosts/{host_id}")
def host_page(host_id: int, web: WebDep) -> Response:
    return _host_page(web, _host(web, host_id))


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
    return _host_page(web, host, plan, error)


@router.post("/hosts/{host_id}/reconcile")
def reconcile(host_id: int, web: WebDep, form: CsrfForm) -> Response:
    """As the API's: mark the host dirty, clear its back-off, audit; the worker does the rest."""
    host = _host(web, host_id)
    bump_generations(web.db, [host.id])
    web.db.execute(update(Host).where(Host.id == host.id).values(retry_at=None))
    audit.record(web.db, web.p, "reconcile", host, {})
    web.db.commit()
    return redirect(f"/staff/hosts/{host.id}")


# -- host edit -----------------------------------------------------------------------------


def _host_values(host: Host) -> dict[str, Any]:
    current = HostSettings.model_validate(host.settings).model_dump(mode="json")
    return {
        "address": host.address,
        "ssh_port": host.ssh_port,
        "ssh_user": host.ssh_user,
        "host_key": host.host_key,
        "roles": list(host.roles),
        "enabled": host.enabled,
        "web_server": current.get("web_server", "nginx"),
        "php_versions": ", ".join(current.get("php_versions", [])),
        "engines": list(current.get("engines", [])),
        "relay_host": current.get("relay_host") or "",
    }


def _host_form(web: Web, host: Host, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", _host_values(host))
    return render(
        web,
        "panel/staff/host_form.html",
        status,
        host=host,
        roles=list(installed().roles),
        engines=[e.value for e in Engine],
        **ctx,
    )


@router.get("/hosts/{host_id}/edit")
def edit_host(host_id: int, web: WebDep) -> Response:
    return _host_form(web, _host(web, host_id))


@router.post("/hosts/{host_id}/edit")
def update_host(host_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The API's HostUpdate through the hosts service: settings are replaced as a whole,
    so the form carries every one of them."""
    host = _host(web, host_id)
    values: dict[str, Any] = {
        "address": text(form, "address"),
        "ssh_port": text(form, "ssh_port"),
        "ssh_user": text(form, "ssh_user"),
        "host_key": text(form, "host_key"),
        "roles": [str(r) for r in form.getlist("roles")],
        "enabled": form.get("enabled") == "on",
        "web_server": text(form, "web_server") or "nginx",
        "php_versions": text(form, "php_versions"),
        "engines": [str(e) for e in form.getlist("engines")],
        "relay_host": text(form, "relay_host"),
    }
    data: dict[str, Any] = {
        k: values[k] or None for k in ("address", "ssh_port", "ssh_user", "host_key")
    }
    data.update(roles=values["roles"], enabled=values["enabled"])
    errors = FormErrors()
    try:
        # Settings of plugins this form does not show are kept as they are.
        data["settings"] = HostSettings.model_validate(
            {
                **host.settings,
                "web_server": values["web_server"],
                "php_versions": lines(values["php_versions"]),
                "engines": values["engines"],
                "relay_host": values["relay_host"] or None,
            }
        )
    except ValidationError as exc:
        errors = errors_of(web.tr, exc)
    try:
        body = HostUpdate.model_validate(data)
    except ValidationError as exc:
        more = errors_of(web.tr, exc)
        errors = FormErrors({**more.fields, **errors.fields}, [*more.general, *errors.general])
    if errors:
        return _host_form(web, host, 422, values=values, errors=errors)
    try:
        changes = host_service.update_host(web.db, host, body)
        updated(web, host, changes)
    except ProblemError as exc:
        web.db.rollback()
        return _host_form(web, host, exc.status, values=values, errors=errors_of(web.tr, exc))
    return redirect(f"/staff/hosts/{host.id}")


@router.get("/applies/{apply_id}")
def apply_page(apply_id: int, web: WebDep) -> Response:
    web.require_staff()
    apply = web.db.get(Apply, apply_id)
    if apply is None:
        raise NotFound("apply")
    host = web.db.get_one(Host, apply.host_id)
    return render(web, "panel/staff/apply.html", apply=apply, host=host)


# -- failed ------------------------------------------------------------------------------


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
    applies = page_of(
        web, select(Apply).where(Apply.result == "failed"), Apply.id, newest_first=True
    )
    hosts = {h.id: h for h in web.db.scalars(select(Host))}
    return render(
        web,
        "panel/staff/failed.html",
        groups=_failed(web),
        applies=applies.rows,
        page=applies,
        hosts=hosts,
        kinds=KINDS,
        https_failed=_https_failed(web),
    )


def _https_failed(web: Web) -> list[Any]:
    """Sites whose last ACME order failed (they serve HTTP, or their older certificate)."""
    return list(
        web.db.execute(
            select(Site.domain, Site.account_id, SiteCertificate.reason)
            .join(SiteCertificate, SiteCertificate.site_id == Site.id)
            .where(SiteCertificate.acme_state == "failed", Site.https == "acme")
            .order_by(Site.id)
        ).all()
    )
