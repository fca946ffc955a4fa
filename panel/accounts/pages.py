"""People and their access: log in (password, then TOTP when enabled), log out, change
password, language, TOTP; an account's members (memberships) and your API tokens."""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse
from pydantic import ValidationError
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.accounts import service as accounts
from panel.accounts.models import Account, ApiToken, Membership, Role, User
from panel.accounts.schemas import MembershipCreate, TokenCreate, UserUpdate
from panel.audit import service as audit
from panel.core.auth import hash_password, verify_password
from panel.core.db import utcnow
from panel.core.errors import Invalid, NotFound, ProblemError
from panel.web import sessions
from panel.web.core import (
    CsrfForm,
    CsrfRefused,
    FormDep,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    errors_of,
    redirect,
    render,
    text,
)
from panel.web.i18n import LANGUAGES

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def _safe_next(value: Any) -> str:
    """Only a path of this site (never //elsewhere or a scheme) is followed after login."""
    target = str(value or "/")
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


def _cookie_args(web: Web) -> dict[str, Any]:
    secure = web.request.url.scheme == "https"
    return {"httponly": True, "samesite": "lax", "secure": secure, "path": "/"}


def _login_page(web: Web, status: int = 200, **ctx: Any) -> HTMLResponse:
    token = web.request.cookies.get(sessions.LOGIN_CSRF_COOKIE) or sessions.new_csrf()
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("email", "")
    ctx.setdefault("next", _safe_next(web.request.query_params.get("next")))
    response = render(web, "panel/login.html", status, login_csrf=token, **ctx)
    response.set_cookie(sessions.LOGIN_CSRF_COOKIE, token, max_age=3600, **_cookie_args(web))
    return response


def _anonymous_csrf(web: Web, form: FormData) -> None:
    if not sessions.same(
        str(form.get("csrf") or ""), web.request.cookies.get(sessions.LOGIN_CSRF_COOKIE)
    ):
        raise CsrfRefused()


@router.get("/login")
def login_form(web: WebDep) -> Response:
    if web.row is not None and web.row.verified:
        return redirect("/")
    return _login_page(web)


@router.post("/login")
def login(web: WebDep, form: FormDep) -> Response:
    _anonymous_csrf(web, form)
    email = str(form.get("email") or "").strip().lower()
    password = str(form.get("password") or "")
    target = _safe_next(form.get("next"))
    client = web.request.client.host if web.request.client else None
    wait = sessions.wait_before_login(web.db, email, client)
    if wait:
        msg = web.tr.ngettext(
            "Too many failed attempts; wait %(n)s second and try again.",
            "Too many failed attempts; wait %(n)s seconds and try again.",
            wait,
        ) % {"n": wait}
        return _login_page(web, 429, errors=FormErrors(general=[msg]), email=email, next=target)
    user = sessions.check_login(web.db, email, password)
    if user is None:
        sessions.record_failure(web.db, email, client)
        web.db.commit()
        errors = FormErrors(general=[web._("Wrong email or password.")])
        return _login_page(web, 401, errors=errors, email=email, next=target)
    sessions.forget_failures(web.db, email)
    prefs = sessions.prefs_of(web.db, user.id)
    row, key = sessions.open_session(web.db, user, verified=not prefs.totp_enabled)
    web.db.commit()
    response = redirect(target if row.verified else "/login/totp?next=" + target)
    response.set_cookie(
        sessions.COOKIE, key, max_age=int(sessions.SESSION_MAX.total_seconds()), **_cookie_args(web)
    )
    response.delete_cookie(sessions.LOGIN_CSRF_COOKIE, path="/")
    if prefs.lang:
        response.set_cookie(sessions.LANG_COOKIE, prefs.lang, max_age=31536000, **_cookie_args(web))
    return response


@router.get("/login/totp")
def totp_form(web: WebDep) -> Response:
    if web.row is None:
        return redirect("/login")
    return render(
        web,
        "panel/totp.html",
        errors=FormErrors(),
        next=_safe_next(web.request.query_params.get("next")),
    )


@router.post("/login/totp")
def totp_check(web: WebDep, form: CsrfForm) -> Response:
    if web.row is None or web.principal is None:
        return redirect("/login")
    user = web.principal.user
    client = web.request.client.host if web.request.client else None
    target = _safe_next(form.get("next"))
    wait = sessions.wait_before_login(web.db, user.email, client)
    prefs = sessions.prefs_of(web.db, user.id)
    if wait or not sessions.totp_ok(prefs.totp_secret, str(form.get("code") or "")):
        if not wait:
            sessions.record_failure(web.db, user.email, client)
            web.db.commit()
        errors = FormErrors(fields={"code": web._("This code is not valid; try the next one.")})
        return render(web, "panel/totp.html", 401, errors=errors, next=target)
    web.row.verified = True
    web.row.csrf = sessions.new_csrf()
    web.db.commit()
    return redirect(target)


@router.post("/logout")
def logout(web: WebDep, form: CsrfForm) -> Response:
    if web.row is not None:
        sessions.close_session(web.db, web.row)
        web.db.commit()
    response = redirect("/login")
    response.delete_cookie(sessions.COOKIE, path="/")
    return response


@router.post("/language")
def language(web: WebDep, form: FormDep) -> Response:
    """Choose the pages' language; remembered for the user, and in a cookie before login."""
    if web.row is not None:
        if not sessions.same(str(form.get("csrf") or ""), web.row.csrf):
            raise CsrfRefused()
    else:
        _anonymous_csrf(web, form)
    lang = str(form.get("lang") or "")
    if lang not in LANGUAGES:
        lang = "en"
    if web.principal is not None and web.row is not None and web.row.verified:
        sessions.prefs_of(web.db, web.principal.user.id).lang = lang
        web.db.commit()
    response = redirect(_safe_next(form.get("next")))
    response.set_cookie(sessions.LANG_COOKIE, lang, max_age=31536000, **_cookie_args(web))
    return response


# -- your profile: password, TOTP ----------------------------------------------------------


def _profile(web: Web, status: int = 200, **ctx: Any) -> HTMLResponse:
    prefs = sessions.prefs_of(web.db, web.p.user.id)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("totp_setup", None)
    ctx.setdefault("done", None)
    return render(web, "panel/profile.html", status, prefs=prefs, **ctx)


@router.get("/profile")
def profile(web: WebDep) -> Response:
    return _profile(web)


@router.post("/profile/password")
def change_password(web: WebDep, form: CsrfForm) -> Response:
    """The API's rule: your current password, and a new one that passes the same checks."""
    p = web.p
    user = web.db.get_one(User, p.user.id)
    try:
        if str(form.get("password")) != str(form.get("password2")):
            raise Invalid("password2", "the two new passwords differ")
        body = UserUpdate(
            password=str(form.get("password") or ""),
            current_password=str(form.get("current_password") or ""),
        )
        if not verify_password(user.password_hash, body.current_password or ""):
            raise Invalid("current_password", "does not match your current password")
    except (ValidationError, Invalid) as exc:
        errors = errors_of(web.tr, exc)
        if "password2" in errors.fields:
            errors.fields["password2"] = web._("The two new passwords differ.")
        return _profile(web, 422, errors=errors)
    assert body.password is not None
    user.password_hash = hash_password(body.password)
    user.updated_at = utcnow()
    audit.record(web.db, p, "update", user, {"password": audit.SECRET_CHANGED})
    assert web.row is not None
    sessions.close_other_sessions(web.db, user.id, web.row.id)
    web.db.commit()
    return _profile(web, done=web._("Your password is changed; other browsers are logged out."))


@router.post("/profile/totp")
def totp_setup(web: WebDep, form: CsrfForm) -> Response:
    """Start (a new secret), confirm (a valid code turns it on) or turn off TOTP."""
    p = web.p
    prefs = sessions.prefs_of(web.db, p.user.id)
    action = str(form.get("action") or "")
    if action == "start":
        prefs.totp_secret = sessions.new_totp_secret()
        prefs.totp_enabled = False
        web.db.commit()
        return _profile(web, totp_setup=sessions.totp_uri(prefs.totp_secret, p.user.email))
    if action == "confirm":
        if not sessions.totp_ok(prefs.totp_secret, str(form.get("code") or "")):
            errors = FormErrors(fields={"code": web._("This code is not valid; try the next one.")})
            uri = sessions.totp_uri(prefs.totp_secret or "", p.user.email)
            return _profile(web, 422, errors=errors, totp_setup=uri)
        prefs.totp_enabled = True
        audit.record(web.db, p, "update", p.user, {"totp": "enabled"})
        web.db.commit()
        return _profile(web, done=web._("Two-factor authentication is on."))
    if action == "disable":
        if not verify_password(p.user.password_hash, str(form.get("current_password") or "")):
            errors = FormErrors(
                fields={"current_password": web.tr.problem("does not match your current password")}
            )
            return _profile(web, 422, errors=errors)
        prefs.totp_enabled = False
        prefs.totp_secret = None
        audit.record(web.db, p, "update", p.user, {"totp": "disabled"})
        web.db.commit()
        return _profile(web, done=web._("Two-factor authentication is off."))
    return redirect("/profile")


# -- account members (owners) --------------------------------------------------------------


def _members(web: Web, account: Account, status: int = 200, **ctx: Any) -> Response:
    rows = web.db.execute(
        select(Membership, User.email)
        .join(User, User.id == Membership.user_id)
        .where(Membership.account_id == account.id)
        .order_by(Membership.id)
    ).all()
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", {"role": "viewer"})
    ctx.setdefault("done", None)
    return render(
        web,
        "panel/members.html",
        status,
        account=account,
        members=rows,
        roles=[r.value for r in Role],
        **ctx,
    )


@router.get("/accounts/{account_id}/members")
def members(account_id: int, web: WebDep) -> Response:
    return _members(web, account_of(web, account_id, Role.owner))


@router.post("/accounts/{account_id}/members")
def add_member(account_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The API's rule: an existing user's email and a role; owners only."""
    account = account_of(web, account_id, Role.owner)
    values = {"email": text(form, "email").lower(), "role": text(form, "role")}
    try:
        body = MembershipCreate(**values)
        m, user = accounts.add_membership(web.db, account.id, body.email, body.role)
        audit.record(web.db, web.p, "create", m, {"email": user.email, "role": body.role})
        web.db.commit()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return _members(web, account, 422, errors=errors_of(web.tr, exc), values=values)
    return _members(web, account, done=web._("%(email)s added.") % {"email": user.email})


def _membership(web: Web, account: Account, membership_id: int) -> Membership:
    m = web.db.get(Membership, membership_id)
    if m is None or m.account_id != account.id:
        raise NotFound("membership")
    return m


@router.post("/accounts/{account_id}/members/{membership_id}")
def change_member(account_id: int, membership_id: int, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.owner)
    m = _membership(web, account, membership_id)
    remove = form.get("action") == "remove"
    role = text(form, "role")
    try:
        if remove:
            accounts.remove_membership(web.db, m)
            audit.record(web.db, web.p, "delete", m, {"user_id": m.user_id})
        else:
            changes = accounts.change_role(web.db, m, Role(role))
            if changes:
                audit.record(web.db, web.p, "update", m, changes)
        web.db.commit()
    except (ProblemError, ValueError) as exc:
        web.db.rollback()
        errors = (
            errors_of(web.tr, exc)
            if isinstance(exc, ProblemError)
            else FormErrors(general=[web._("Unknown role.")])
        )
        return _members(web, account, 409, errors=errors)
    return redirect(f"/accounts/{account.id}/members")


# -- your API tokens -----------------------------------------------------------------------


def _tokens(web: Web, status: int = 200, **ctx: Any) -> Response:
    p = web.p
    rows = web.db.scalars(
        select(ApiToken).where(ApiToken.user_id == p.user.id).order_by(ApiToken.id.desc())
    ).all()
    scopes = ["read"] + [f"account:{a.slug}" for a in web.accounts()]
    if p.is_staff:
        scopes = ["admin", "billing", *scopes]
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("secret", None)
    ctx.setdefault("values", {})
    return render(web, "panel/tokens.html", status, tokens=rows, scopes=scopes, now=utcnow(), **ctx)


@router.get("/tokens")
def tokens(web: WebDep) -> Response:
    return _tokens(web)


@router.post("/tokens")
def create_token(web: WebDep, form: CsrfForm) -> Response:
    """Scopes never wider than the user's own (the service's rule); the secret shown once."""
    p = web.p
    expires = text(form, "expires")
    values: dict[str, Any] = {
        "name": text(form, "name"),
        "scopes": [str(s) for s in form.getlist("scopes")],
    }
    try:
        expires_at = (
            dt.datetime.combine(dt.date.fromisoformat(expires), dt.time(), dt.UTC)
            if expires
            else None
        )
        body = TokenCreate(expires_at=expires_at, **values)
        token, secret = accounts.create_token(
            web.db, p, p.user, name=body.name, scopes=list(body.scopes), expires_at=expires_at
        )
        audit.record(
            web.db,
            p,
            "create",
            token,
            {"name": token.name, "scopes": token.scopes, "user_id": p.user.id},
        )
        web.db.commit()
    except ValueError as exc:  # a bad date, or pydantic's ValidationError
        web.db.rollback()
        errors = (
            errors_of(web.tr, exc)
            if isinstance(exc, ValidationError)
            else FormErrors(fields={"expires": web._("Give a date like 2030-12-31.")})
        )
        return _tokens(web, 422, errors=errors, values=values)
    except ProblemError as exc:
        web.db.rollback()
        return _tokens(web, 422, errors=errors_of(web.tr, exc), values=values)
    return _tokens(web, 201, secret=secret)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: int, web: WebDep, form: CsrfForm) -> Response:
    p = web.p
    token = web.db.get(ApiToken, token_id)
    if token is None or token.user_id != p.user.id:
        raise NotFound("token")
    if accounts.revoke_token(token):
        audit.record(web.db, p, "revoke", token, {"name": token.name})
        web.db.commit()
    return redirect("/tokens")
