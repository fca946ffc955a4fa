"""An account's domains: list them, add one, delete one that nothing uses any more.
Every write goes through ``panel.domains.service``, as the API's."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import select

from panel.accounts.models import Account, Role
from panel.audit import service as audit
from panel.core.errors import ProblemError
from panel.core.objects import get_visible, get_writable
from panel.domains import service as domains
from panel.domains.models import Domain
from panel.domains.schemas import DomainCreate
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    errors_of,
    redirect,
    render,
    render_flashed,
    text,
)
from panel.web.i18n import _

router = APIRouter(route_class=PageRoute, include_in_schema=False)

# What ``domains.domain_in_use`` names, for the page's language.
USES = {
    "sites": _("sites"),
    "site aliases": _("site aliases"),
    "mailboxes": _("mailboxes"),
    "mail aliases": _("mail aliases"),
    "lists": _("lists"),
    "subdomains": _("subdomains"),
}


def _page(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    rows = list(
        web.db.scalars(select(Domain).where(Domain.account_id == account.id).order_by(Domain.name))
    )
    used = {d.id: [web._(USES.get(u, u)) for u in domains.domain_in_use(web.db, d)] for d in rows}
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {})
    return render_flashed(
        web,
        "panel/domains.html",
        status,
        account=account,
        domains=rows,
        used=used,
        writable=web.can_write(account.id),
        **ctx,
    )


@router.get("/accounts/{account_id}/domains")
def domain_list(account_id: int, web: WebDep) -> Response:
    return _page(web, account_of(web, account_id))


@router.post("/accounts/{account_id}/domains")
def add_domain(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values = {"name": text(form, "name")}
    try:
        body = DomainCreate(account_id=account.id, name=values["name"])
        domain = domains.create_domain(web.db, web.p, account.id, body.name)
        audit.record(web.db, web.p, "create", domain, {"name": domain.name})
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _page(web, account, 422, errors=errors_of(web.tr, exc), values=values)
    return redirect(
        f"/accounts/{account.id}/domains", web._("Domain %(name)s added.") % {"name": domain.name}
    )


def _confirm(web: Web, domain: Domain, status: int = 200, **ctx: Any) -> Response:
    used = [web._(USES.get(u, u)) for u in domains.domain_in_use(web.db, domain)]
    ctx.setdefault("errors", FormErrors())
    return render(web, "panel/domain_delete.html", status, domain=domain, used=used, **ctx)


@router.get("/domains/{domain_id}/delete")
def confirm_delete_domain(domain_id: int, web: WebDep) -> Response:
    domain = get_visible(web.db, web.p, Domain, domain_id)
    return _confirm(web, domain)


@router.post("/domains/{domain_id}/delete")
def delete_domain(domain_id: int, web: WebDep, form: CsrfForm) -> Response:
    domain = get_writable(web.db, web.p, Domain, domain_id)
    account_id, name = domain.account_id, domain.name
    try:
        domains.delete_domain(web.db, domain)
        audit.record(web.db, web.p, "delete", domain, {"name": name})
        web.db.commit()
    except ProblemError as exc:
        web.db.rollback()
        return _confirm(web, domain, exc.status, errors=errors_of(web.tr, exc))
    return redirect(
        f"/accounts/{account_id}/domains", web._("Domain %(name)s deleted.") % {"name": name}
    )
