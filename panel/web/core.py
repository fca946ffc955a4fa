"""Page plumbing: the request's user and language, rendering, forms, CSRF, and errors shown
next to the field they concern (the API's own problem details, translated)."""

from __future__ import annotations

from collections.abc import Callable, Collection, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, TypeVar
from urllib.parse import quote

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from pydantic import BaseModel, ValidationError
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from panel.accounts.models import Account, Role
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.errors import NotFound, ProblemError
from panel.core.http import SessionDep
from panel.core.objects import finish_update
from panel.web import sessions
from panel.web.i18n import LANGUAGE_NAMES, LANGUAGES, Translator, negotiate
from panel.web.models import WebPrefs, WebSession

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
STATIC = Path(__file__).resolve().parent / "static"

env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(TEMPLATES),
    autoescape=jinja2.select_autoescape(["html"]),
    undefined=jinja2.StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


T = TypeVar("T")


class LoginRequired(Exception):
    """No live session: the page redirects to the login form."""


class CsrfRefused(Exception):
    """A form came without the token of its session."""


@dataclass
class Web:
    """One page request: the database session, the user (if logged in), the language."""

    request: Request
    db: Session
    tr: Translator
    row: WebSession | None = None
    principal: Principal | None = None
    extra_cookies: dict[str, str] = field(default_factory=dict)

    @property
    def p(self) -> Principal:
        if self.principal is None or self.row is None or not self.row.verified:
            raise LoginRequired()
        return self.principal

    def require_staff(self) -> Principal:
        p = self.p
        p.require_staff()
        return p

    def _(self, message: str) -> str:
        return self.tr.gettext(message)

    def accounts(self) -> list[Account]:
        from sqlalchemy import select

        p = self.p
        return list(self.db.scalars(p.fence(select(Account), Account.id).order_by(Account.name)))

    def can_write(self, account_id: int) -> bool:
        p = self.p
        role = p.role(account_id)
        return role is not None and role is not Role.viewer and not p.read_only


def get_web(request: Request, db: SessionDep) -> Web:
    loaded = sessions.load_session(db, request.cookies.get(sessions.COOKIE))
    row, principal, chosen = None, None, request.cookies.get(sessions.LANG_COOKIE)
    if loaded is not None:
        row, user = loaded
        client = request.client.host if request.client else None
        principal = sessions.principal_of(db, user, row, client)
        prefs = db.get(WebPrefs, user.id)
        if prefs is not None and prefs.lang:
            chosen = prefs.lang
    lang = negotiate(chosen, request.headers.get("accept-language"))
    return Web(request=request, db=db, tr=Translator(lang), row=row, principal=principal)


WebDep = Annotated[Web, Depends(get_web)]


async def get_form(request: Request) -> FormData:
    return await request.form()


FormDep = Annotated[FormData, Depends(get_form)]


def check_csrf(web: Web, form: FormData) -> None:
    """Every form carries its session's token; a form without it (or with another) is refused."""
    expected = web.row.csrf if web.row is not None else None
    if not sessions.same(str(form.get("csrf") or ""), expected):
        raise CsrfRefused()


def csrf_form(web: WebDep, form: FormDep) -> FormData:
    check_csrf(web, form)
    return form


CsrfForm = Annotated[FormData, Depends(csrf_form)]


def render(web: Web, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    tr = web.tr
    body = env.get_template(template).render(
        _=tr.gettext,
        gettext=tr.gettext,
        ngettext=tr.ngettext,
        fmt_dt=tr.datetime,
        fmt_num=tr.number,
        fmt_size=tr.size,
        problem=tr.problem,
        lang=tr.lang,
        languages=[(code, LANGUAGE_NAMES[code]) for code in LANGUAGES],
        web=web,
        user=web.principal.user if web.principal and web.row and web.row.verified else None,
        csrf=web.row.csrf if web.row else ctx.pop("login_csrf", ""),
        view_as=web.row.view_as_account_id if web.row else None,
        path=web.request.url.path,
        **ctx,
    )
    response = HTMLResponse(body, status_code=status)
    response.headers["Content-Language"] = tr.lang
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Referrer-Policy"] = "same-origin"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
    )
    return response


FLASH_COOKIE = "konbit_flash"


def redirect(url: str, flash: str | None = None) -> RedirectResponse:
    response = RedirectResponse(url, status_code=303)
    if flash:
        response.set_cookie(FLASH_COOKIE, quote(flash), httponly=True, samesite="lax", path="/")
    return response


def render_flashed(web: Web, template: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    """``render``, with the message the last ``redirect`` left (shown once, then forgotten)."""
    from urllib.parse import unquote

    flash = unquote(web.request.cookies.get(FLASH_COOKIE) or "") or None
    response = render(web, template, status, flash=flash, **ctx)
    if flash:
        response.delete_cookie(FLASH_COOKIE, path="/")
    return response


@dataclass
class FormErrors:
    """What went wrong with a form: per field, and for the whole form."""

    fields: dict[str, str] = field(default_factory=dict)
    general: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.fields or self.general)


def errors_of(tr: Translator, exc: ProblemError | ValidationError) -> FormErrors:
    """The API's problem (or validation error) as messages for the form, translated."""
    out = FormErrors()
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            name = ".".join(str(p) for p in e["loc"] if "[" not in str(p)) or "form"
            name = name.split(".")[0]
            out.fields.setdefault(name, tr.problem(str(e["msg"]).removeprefix("Value error, ")))
        return out
    for item in exc.errors:
        name = item["field"].split(".")[0]
        out.fields.setdefault(name, tr.problem(item["reason"]))
    if not exc.errors or exc.status != 422:
        out.general.append(tr.problem(exc.detail))
    return out


def attempt(web: Web, write: Callable[[], T]) -> T | FormErrors:
    """One write through the services: its result, or, when refused (the service's problem or
    a schema's validation error), the session rolled back and the errors for the form."""
    try:
        return write()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return errors_of(web.tr, exc)


def form_errors(
    tr: Translator,
    exc: ProblemError | ValidationError,
    inputs: Collection[str],
    aliases: Mapping[str, str] | None = None,
) -> tuple[int, FormErrors]:
    """The status and the errors of a refused write for a form with ``inputs``: each at its
    input, a nested field too (``source.archive.path`` at ``path``, ``A.address`` at
    ``address``, a tagged union's unknown tag at its tag's input), what the form has no
    input for above it.  ``aliases``: the service's name for what the form calls otherwise."""
    aliases = aliases or {}
    out = FormErrors()

    def put(name: str | None, reason: str) -> None:
        shown = aliases.get(name, name) if name else None
        if shown is not None and shown in inputs:
            out.fields.setdefault(shown, reason)
        else:
            out.general.append(reason)

    if isinstance(exc, ValidationError):
        for e in exc.errors():
            parts = [str(p) for p in e["loc"]]
            if e["type"] in ("union_tag_invalid", "union_tag_not_found"):
                parts.append(str((e.get("ctx") or {}).get("discriminator", "")).strip("'\""))
            name = next((p for p in reversed(parts) if aliases.get(p, p) in inputs), None)
            put(name, tr.problem(str(e["msg"]).removeprefix("Value error, ")))
        return 422, out
    found = errors_of(tr, exc)
    for name, reason in found.fields.items():
        put(name, reason)
    out.general += found.general
    return exc.status, out


def attempt_form(
    web: Web,
    write: Callable[[], T],
    inputs: Collection[str],
    aliases: Mapping[str, str] | None = None,
) -> T | tuple[int, FormErrors]:
    """One write through the services: its result; or, refused, the session rolled back and
    (status, the form's errors: ``form_errors``).  A 403 or 404 is a page, not a form's."""
    try:
        return write()
    except ValidationError as exc:
        web.db.rollback()
        return form_errors(web.tr, exc, inputs, aliases)
    except ProblemError as exc:
        web.db.rollback()
        if exc.status in (403, 404):
            raise
        return form_errors(web.tr, exc, inputs, aliases)


def lines(value: Any) -> list[str]:
    """A textarea or comma list as a list of non-empty, stripped lines."""
    text = str(value or "").replace(",", "\n")
    return [x.strip() for x in text.splitlines() if x.strip()]


class PageRoute(APIRoute):
    """Routes of the pages: errors become pages (404 page, 403 page, redirect to login)."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        original = super().get_route_handler()

        async def handler(request: Request) -> Response:
            try:
                return await original(request)
            except LoginRequired:
                target = request.url.path
                if request.url.query:
                    target += "?" + request.url.query
                return RedirectResponse("/login?next=" + quote(target, safe=""), status_code=303)
            except CsrfRefused:
                return _error_page(request, 403, "csrf")
            except ProblemError as exc:
                return _error_page(request, exc.status, exc.kind, exc.detail)

        return handler


def _error_page(request: Request, status: int, kind: str, detail: str = "") -> HTMLResponse:
    lang = negotiate(
        request.cookies.get(sessions.LANG_COOKIE), request.headers.get("accept-language")
    )
    tr = Translator(lang)
    body = env.get_template("panel/error.html").render(
        _=tr.gettext,
        lang=lang,
        status=status,
        kind=kind,
        detail=tr.problem(detail) if detail else "",
    )
    return HTMLResponse(body, status_code=status, headers={"Content-Language": lang})


# -- pagination: the API's keyset cursor, as "next page" links -----------------------------

PAGE_SIZE = 50
MAX_PAGE_SIZE = 200


@dataclass
class Pager:
    """One page of a long list: its rows, and the links to the next and the first page."""

    rows: list[Any]
    next_url: str | None = None
    first_url: str | None = None


def page_of(
    web: Web,
    stmt: Any,
    id_column: Any,
    *,
    newest_first: bool = False,
    size: int = PAGE_SIZE,
    prefix: str = "",
) -> Pager:
    """Rows after ``?cursor=`` (the API's opaque cursor) in id order, newest first if asked;
    ``?limit=`` changes the page size (at most 200). Other query parameters (filters) are
    kept in the links. ``prefix`` names the parameters when a page has several lists."""
    from urllib.parse import urlencode

    from panel.core.pagination import paginate

    q = web.request.query_params
    cursor = q.get(prefix + "cursor") or None
    try:
        limit = min(max(int(q.get(prefix + "limit") or size), 1), MAX_PAGE_SIZE)
    except ValueError:
        limit = size
    found, nxt = paginate(web.db, stmt, id_column, cursor, limit, newest_first)
    rows = list(found)
    kept = [(k, v) for k, v in q.multi_items() if k != prefix + "cursor"]
    path = web.request.url.path

    def url(params: list[tuple[str, str]]) -> str:
        return path + ("?" + urlencode(params) if params else "")

    return Pager(
        rows=rows,
        next_url=url([*kept, (prefix + "cursor", nxt)]) if nxt else None,
        first_url=url(kept) if cursor else None,
    )


# -- forms and writes, as the API's ---------------------------------------------------------


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value.strip() if isinstance(value, str) else ""


def checked(form: FormData, name: str) -> bool:
    return form.get(name) in ("on", "true", "1", "yes")


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
    web: Web,
    obj: Any,
    change: Callable[[Any, Any, Any], dict[str, Any]],
    body: Callable[[], BaseModel],
) -> FormErrors | None:
    """Change one object through its domain service (``change(db, obj, body())``), as the
    API does: None, or the form's errors (see ``attempt``)."""
    result = attempt(web, lambda: updated(web, obj, change(web.db, obj, body())))
    return result if isinstance(result, FormErrors) else None
