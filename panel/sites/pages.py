"""A member's sites: create one, change it (aliases, PHP, HTTPS, enabled)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, Response
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.accounts.account_pages import KINDS
from panel.accounts.models import Account, Role
from panel.core.objects import (
    get_visible,
    get_writable,
)
from panel.hosts.models import Host
from panel.sites import service as sites
from panel.sites.models import HttpsMode, Site
from panel.sites.schemas import SiteCreate, SiteUpdate
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


@dataclass(frozen=True)
class NewSitePart:
    """What another domain adds to the new-site form (``panel.apps``: an application to
    install): ``template`` is included in the form, given ``part`` (what ``context`` says
    for the form shown again, or None for a new one); ``after`` runs once the site is made
    and committed, and the page it answers (or None) replaces the redirect."""

    template: str
    context: Callable[[Web, FormData | None], dict[str, Any]]
    after: Callable[[Web, Site, FormData], Response | None]


# Filled by the domain's page module when it is imported (``panel.web.router``).
NEW_SITE_PARTS: list[NewSitePart] = []


def php_versions(web: Web) -> list[str]:
    versions: set[str] = set()
    for host in web.db.scalars(select(Host).where(Host.enabled.is_(True))):
        if "web" in host.roles:
            versions.update(host.settings.get("php_versions") or [])
    return sorted(versions)


def _site_form(
    web: Web, account: Account, status: int = 200, form: FormData | None = None, **ctx: Any
) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("site", None)
    ctx.setdefault("values", {})
    new = ctx["site"] is None
    parts = [{"template": p.template, **p.context(web, form)} for p in NEW_SITE_PARTS if new]
    return render(
        web,
        "panel/site_form.html",
        status,
        account=account,
        php_versions=php_versions(web),
        https_modes=[m.value for m in HttpsMode],
        parts=parts,
        **ctx,
    )


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
        return _site_form(web, account, 422, form, errors=site, values=values)
    for part in NEW_SITE_PARTS:
        page = part.after(web, site, form)
        if page is not None:
            return page
    return redirect(
        f"/accounts/{account.id}",
        web._("Site %(name)s created; it is pending until its host serves it.")
        % {"name": site.domain},
    )


@router.get("/sites/{site_id}")
def edit_site(site_id: int, web: WebDep) -> Response:
    site = get_visible(web.db, web.p, Site, site_id, KINDS["site"].options)
    account = account_of(web, site.account_id)
    values = {
        "domain": site.domain,
        "aliases": [a.name for a in site.aliases],
        "php": site.php,
        "https": site.https,
        "enabled": site.enabled,
    }
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
