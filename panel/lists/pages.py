"""A member's mailing lists: create one, change it, its roster (list, add one, import many,
remove) and the settings its managers may change (``panel.lists.schemas.ListSettings``),
through ``panel.lists.service`` as the API's ``/lists``, ``/lists/{id}/members`` and
``PATCH /lists/{id}``."""

from __future__ import annotations

import re
from typing import Any

from fastapi import APIRouter, Response
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.accounts.models import Account, Role
from panel.audit import service as audit
from panel.core.errors import ProblemError
from panel.core.http import text_match
from panel.core.objects import get_visible, get_writable
from panel.lists import service as lists
from panel.lists.models import ListMember, MailingList, MemberRole, SubscriptionPolicy
from panel.lists.schemas import (
    MAX_IMPORT,
    ListCreate,
    ListSettings,
    ListUpdate,
    MemberCreate,
    MemberImport,
)
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    create,
    errors_of,
    lines,
    page_of,
    redirect,
    render,
    render_flashed,
    save,
    text,
)

router = APIRouter(route_class=PageRoute, include_in_schema=False)


# -- creating and changing a list ----------------------------------------------------------


def _list_form(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("mlist", None)
    ctx.setdefault("values", {"policy": "confirm", "owners": [web.p.user.email]})
    return render(
        web,
        "panel/list_form.html",
        status,
        account=account,
        policies=[p.value for p in SubscriptionPolicy],
        **ctx,
    )


@router.get("/accounts/{account_id}/lists/new")
def new_list(account_id: int, web: WebDep) -> Response:
    return _list_form(web, account_of(web, account_id, Role.manager))


@router.post("/accounts/{account_id}/lists")
def create_list(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    values: dict[str, Any] = {
        "address": text(form, "address").lower(),
        "owners": lines(form.get("owners")),
        "policy": text(form, "policy") or "confirm",
    }
    mlist = create(web, account, ListCreate, lists.create_list, values)
    if isinstance(mlist, FormErrors):
        return _list_form(web, account, 422, errors=mlist, values=values)
    return redirect(
        f"/accounts/{account.id}", web._("Mailing list %(name)s created.") % {"name": mlist.address}
    )


@router.get("/lists/{list_id}")
def edit_list(list_id: int, web: WebDep) -> Response:
    mlist = get_visible(web.db, web.p, MailingList, list_id)
    account = account_of(web, mlist.account_id)
    values = {"address": mlist.address, "owners": mlist.owners, "policy": mlist.policy}
    return _list_form(web, account, mlist=mlist, values=values)


@router.post("/lists/{list_id}")
def update_list(list_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    account = account_of(web, mlist.account_id)
    values: dict[str, Any] = {
        "owners": lines(form.get("owners")),
        "policy": text(form, "policy") or None,
    }
    errors = save(web, mlist, lists.update_list, lambda: ListUpdate(**values))
    if errors is not None:
        values["address"] = mlist.address
        return _list_form(web, account, 422, mlist=mlist, errors=errors, values=values)
    return redirect(
        f"/accounts/{account.id}", web._("Mailing list %(name)s saved.") % {"name": mlist.address}
    )


# -- roster ----------------------------------------------------------------------------------


def _roster(web: Web, mlist: MailingList, status: int = 200, **ctx: Any) -> Response:
    account = account_of(web, mlist.account_id)
    q = web.request.query_params.get("q", "").strip()
    stmt = select(ListMember).where(ListMember.list_id == mlist.id)
    if q:
        stmt = stmt.where(text_match(ListMember.email, q))
    page = page_of(web, stmt, ListMember.id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"role": "member", "import_role": "member"})
    writable = web.can_write(account.id) and mlist.status != "deleting"
    return render_flashed(
        web,
        "panel/list_members.html",
        status,
        account=account,
        mlist=mlist,
        members=page.rows,
        page=page,
        q=q,
        writable=writable,
        roles=[r.value for r in MemberRole],
        max_import=MAX_IMPORT,
        **ctx,
    )


@router.get("/lists/{list_id}/members")
def roster(list_id: int, web: WebDep) -> Response:
    return _roster(web, get_visible(web.db, web.p, MailingList, list_id))


@router.post("/lists/{list_id}/members")
def add_member(list_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    values = {"email": text(form, "email"), "role": text(form, "role") or "member"}
    try:
        body = MemberCreate.model_validate(values)
        lists.add_member(web.db, mlist, body.email, body.role)
        audit.record(web.db, web.p, "update", mlist, {"members": {"added": [body.email]}})
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _roster(
            web,
            mlist,
            422,
            errors=errors_of(web.tr, exc),
            values={**values, "import_role": "member"},
        )
    return redirect(
        f"/lists/{mlist.id}/members", web._("%(email)s added to the list.") % {"email": body.email}
    )


_ANGLED = re.compile(r"<([^<>\s]+)>")


def addresses(raw: str) -> list[str]:
    """The addresses of a pasted roster: one or more a line, separated by spaces, commas or
    semicolons; ``Name <address>`` keeps the address."""
    out: list[str] = []
    for line in raw.splitlines():
        angled = _ANGLED.findall(line)
        out.extend(angled if angled else [w for w in re.split(r"[\s,;]+", line) if w])
    return out


def _import_errors(web: Web, exc: ValidationError, emails: list[str]) -> FormErrors:
    """Which pasted addresses are wrong, each with its reason (the first few)."""
    wrong: list[str] = []
    other = FormErrors()
    for e in exc.errors():
        loc = e["loc"]
        if len(loc) > 1 and loc[0] == "emails" and isinstance(loc[1], int):
            reason = web.tr.problem(str(e["msg"]).removeprefix("Value error, "))
            wrong.append(
                web._("%(address)s: %(reason)s") % {"address": emails[loc[1]], "reason": reason}
            )
        else:
            name = str(loc[0]) if loc else "emails"
            other.fields.setdefault(name, web.tr.problem(str(e["msg"])))
    if wrong:
        shown = wrong[:5]
        if len(wrong) > 5:
            shown.append(web._("and %(count)s more") % {"count": len(wrong) - 5})
        other.fields["emails"] = "; ".join(shown)
    return other


@router.post("/lists/{list_id}/members/import")
def import_members(list_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    raw = str(form.get("emails") or "")
    role = text(form, "import_role") or "member"
    values = {"emails": raw, "import_role": role, "role": "member"}
    emails = addresses(raw)
    try:
        body = MemberImport.model_validate({"emails": emails, "role": role})
    except ValidationError as exc:
        return _roster(web, mlist, 422, errors=_import_errors(web, exc, emails), values=values)
    try:
        rows, already = lists.add_members(web.db, mlist, body.emails, body.role)
        if rows:
            audit.record(web.db, web.p, "update", mlist, {"members": {"imported": len(rows)}})
        web.db.commit()
    except ProblemError as exc:
        web.db.rollback()
        return _roster(web, mlist, exc.status, errors=errors_of(web.tr, exc), values=values)
    return redirect(
        f"/lists/{mlist.id}/members",
        web._("Imported: %(added)s added, %(already)s already on the list.")
        % {"added": len(rows), "already": already},
    )


@router.post("/lists/{list_id}/members/{member_id}/remove")
def remove_member(list_id: int, member_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    member = lists.get_member(web.db, mlist, member_id)
    email = member.email
    lists.remove_member(web.db, mlist, member)
    audit.record(web.db, web.p, "update", mlist, {"members": {"removed": [email]}})
    web.db.commit()
    return redirect(
        f"/lists/{mlist.id}/members", web._("%(email)s removed from the list.") % {"email": email}
    )


# -- settings --------------------------------------------------------------------------------

TEXTS = ("display_name", "description", "subject_prefix")
CHOICES = ("archive_policy", "reply_to")
FLAGS = ("advertised", "send_welcome_message")


def _setting_values(mlist: MailingList) -> dict[str, str]:
    """What the form shows: the list's own settings; empty for the list manager's default."""
    current = mlist.settings or {}
    values: dict[str, str] = {}
    for name in ListSettings.model_fields:
        value = current.get(name)
        if name in FLAGS:
            values[name] = "" if value is None else ("yes" if value else "no")
        else:
            values[name] = "" if value is None else str(value)
    return values


def _settings_form(web: Web, mlist: MailingList, status: int = 200, **ctx: Any) -> Response:
    account = account_of(web, mlist.account_id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", _setting_values(mlist))
    writable = web.can_write(account.id) and mlist.status != "deleting"
    return render_flashed(
        web,
        "panel/list_settings.html",
        status,
        account=account,
        mlist=mlist,
        writable=writable,
        **ctx,
    )


def _submitted(form: FormData, mlist: MailingList) -> tuple[dict[str, str], dict[str, Any]]:
    """The form's values, and the settings to send: only those that differ from what the
    form showed (an untouched field keeps the list's value, or the manager's default)."""
    shown = _setting_values(mlist)
    values: dict[str, str] = {}
    for name in ListSettings.model_fields:
        raw = form.get(name)
        value = raw if isinstance(raw, str) else ""
        values[name] = value if name == "subject_prefix" else value.strip()
    wanted: dict[str, Any] = {}
    for name, value in values.items():
        if value == shown[name]:
            continue
        if name in FLAGS:
            if value in ("yes", "no"):
                wanted[name] = value == "yes"
        elif name in CHOICES or name == "max_message_size":
            if value:
                wanted[name] = value
        else:
            wanted[name] = value
    return values, wanted


@router.get("/lists/{list_id}/settings")
def list_settings(list_id: int, web: WebDep) -> Response:
    return _settings_form(web, get_visible(web.db, web.p, MailingList, list_id))


@router.post("/lists/{list_id}/settings")
def save_list_settings(list_id: int, web: WebDep, form: CsrfForm) -> Response:
    mlist = get_writable(web.db, web.p, MailingList, list_id)
    values, wanted = _submitted(form, mlist)
    errors = save(
        web,
        mlist,
        lists.update_list,
        lambda: ListUpdate(settings=ListSettings.model_validate(wanted)),
    )
    if errors is not None:
        return _settings_form(web, mlist, 422, errors=errors, values=values)
    return redirect(
        f"/lists/{mlist.id}/settings",
        web._("Settings of %(name)s saved.") % {"name": mlist.address},
    )
