"""A member's objects of plugin-declared kinds (``provisioners.api.ObjectKind`` with a
``spec``): list, create, edit and delete them, with forms generated from the kind's own
pydantic model, so that a new plugin needs no page written for it. Every write goes
through ``panel.objects.service``, as the API's does."""

from __future__ import annotations

import enum
import json
import types
import typing
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Union

from fastapi import APIRouter, Response
from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.accounts.models import Account, Role
from panel.core.db import ObjectStatus
from panel.core.errors import NotFound, ProblemError
from panel.core.objects import finish_delete, get_visible, get_writable
from panel.objects import service
from panel.objects.models import PluginObject
from panel.objects.schemas import ObjectCreate, ObjectUpdate, without_secrets
from panel.sites.models import Site
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    account_of,
    created,
    page_of,
    redirect,
    render,
    render_flashed,
    text,
    updated,
)
from panel.web.i18n import Translator
from provisioners.api import ObjectKind
from provisioners.registry import installed

router = APIRouter(route_class=PageRoute, include_in_schema=False)

SPEC = "spec."  # form inputs of the spec are named "spec.<field>", as the API's errors are
LIST_COLUMNS = 3  # spec fields shown in the list besides name and status
HASH = "_hash"  # a secret's hash (``password_hash``): kept by the panel, never in a form

Widget = Literal["text", "number", "checkbox", "select", "lines", "password", "json"]

# What a domain adds to the page of an object of its kind, beyond the generic form (the
# cron job's "Last runs" and "Run now"): kind -> the links and buttons for one object,
# each ``{"label": ..., "url": ...}`` and ``"method": "post"`` for a button (a form with
# the session's CSRF token). Filled by the domain's page module when it is imported.
Action = dict[str, str]
ACTIONS: dict[str, Callable[[Web, PluginObject], list[Action]]] = {}


# -- the form of a kind, from its spec model -------------------------------------------------


@dataclass(frozen=True)
class SpecField:
    """One input of a kind's form: how to show a spec field, and how to read it back."""

    name: str  # the spec's field name
    label: str
    widget: Widget
    required: bool
    default: Any = None
    nullable: bool = False  # None is a value the model takes (``X | None``)
    hint: str = ""
    options: tuple[str, ...] = ()
    minimum: int | float | None = None
    maximum: int | float | None = None
    max_length: int | None = None
    step: str = "1"

    @property
    def key(self) -> str:
        """The input's name, and the ``field`` of the API's 422 about it."""
        return SPEC + self.name

    @property
    def secret(self) -> bool:
        return self.widget == "password"

    def choices(self) -> list[tuple[str, str]]:
        """A select's options; one that may be None may be left unset."""
        unset = [("", "—")] if self.nullable or (not self.required and self.default is None) else []
        return unset + [(o, o) for o in self.options]

    def attrs(self) -> str:
        """Extra HTML attributes: numbers and lengths only, never a user's value."""
        out = []
        if self.widget == "number":
            out.append(f'step="{self.step}"')
            if self.minimum is not None:
                out.append(f'min="{self.minimum}"')
            if self.maximum is not None:
                out.append(f'max="{self.maximum}"')
            if self.step == "1":
                out.append('inputmode="numeric"')
        if self.max_length is not None and self.widget in ("text", "password"):
            out.append(f'maxlength="{int(self.max_length)}"')
        return " ".join(out)


def _unwrap(annotation: Any) -> tuple[Any, bool]:
    """The annotation without ``Annotated`` and ``| None``, and whether None is allowed."""
    optional = False
    while True:
        origin = typing.get_origin(annotation)
        if origin is typing.Annotated:
            annotation = typing.get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            args = [a for a in typing.get_args(annotation) if a is not type(None)]
            optional = optional or len(args) < len(typing.get_args(annotation))
            if len(args) != 1:
                return annotation, optional
            annotation = args[0]
        else:
            return annotation, optional


def _schema_of(prop: dict[str, Any]) -> dict[str, Any]:
    """A property's JSON schema, merged with its non-null ``anyOf`` branch (``int | None``)."""
    merged = dict(prop)
    for branch in prop.get("anyOf", ()):
        if branch.get("type") != "null":
            merged = {**branch, **merged}
    return merged


def _widget(name: str, annotation: Any) -> tuple[Widget, tuple[str, ...]]:
    if annotation is SecretStr or name.startswith("password"):
        return "password", ()
    if annotation is bool:
        return "checkbox", ()
    if annotation is int or annotation is float:
        return "number", ()
    if typing.get_origin(annotation) is Literal:
        return "select", tuple(str(a) for a in typing.get_args(annotation))
    if isinstance(annotation, type) and issubclass(annotation, enum.Enum):
        return "select", tuple(str(m.value) for m in annotation)
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        return "lines", ()
    if annotation is str or (isinstance(annotation, type) and issubclass(annotation, str)):
        return "text", ()
    return "json", ()


def _default(info: FieldInfo) -> Any:
    if info.is_required():
        return None
    value = info.get_default(call_default_factory=True)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, SecretStr):
        return None
    return value


def spec_fields(kind: ObjectKind, tr: Translator) -> list[SpecField]:
    """The inputs of a kind's form, in the spec model's field order. Labels and help texts
    go through the catalog, so a plugin's English words show translated where known."""
    assert kind.spec is not None
    props = kind.spec.model_json_schema().get("properties", {})
    out = []
    for name, info in kind.spec.model_fields.items():
        if name.endswith(HASH):  # set by the panel from a write-only field, never shown
            continue
        annotation, optional = _unwrap(info.annotation)
        widget, options = _widget(name, annotation)
        schema = _schema_of(props.get(name, {}))
        minimum = schema.get("minimum")
        maximum = schema.get("maximum")
        if minimum is None and "exclusiveMinimum" in schema:  # gt=0 on an int: min="1"
            minimum = schema["exclusiveMinimum"] + (1 if annotation is int else 0)
        if maximum is None and "exclusiveMaximum" in schema:
            maximum = schema["exclusiveMaximum"] - (1 if annotation is int else 0)
        label = info.title or name.replace("_", " ").capitalize()
        out.append(
            SpecField(
                name=name,
                label=tr.gettext(label),
                widget=widget,
                required=info.is_required() and not optional,
                default=_default(info),
                nullable=optional,
                hint=tr.gettext(info.description) if info.description else "",
                options=options,
                minimum=minimum,
                maximum=maximum,
                max_length=schema.get("maxLength"),
                step="1" if annotation is int else "any",
            )
        )
    return out


def form_values(fields: list[SpecField], spec: dict[str, Any]) -> dict[str, Any]:
    """What the inputs show for a spec: lists one per line, JSON as JSON, secrets never."""
    out: dict[str, Any] = {}
    for f in fields:
        value = spec.get(f.name, f.default)
        if f.secret:
            continue
        if f.widget == "lines":
            value = "\n".join(str(v) for v in value or ())
        elif f.widget == "json":
            value = "" if value is None else json.dumps(value)
        elif f.widget == "select" and value is not None:
            value = str(value)
        out[f.key] = value
    return out


def _number(raw: str) -> int | float | str:
    for convert in (int, float):
        try:
            return convert(raw)
        except ValueError:
            pass
    return raw  # the model names it ("Input should be a valid integer")


def read_spec(
    tr: Translator, fields: list[SpecField], form: FormData, editing: bool = False
) -> tuple[dict[str, Any], dict[str, Any], FormErrors]:
    """The spec a form asks for, the values to show again if it is refused, and the errors
    found before the model sees it (JSON that does not parse). An empty input leaves the
    field to the model's default. Editing, the spec is a merge patch (the API's PATCH): an
    emptied input is null (back to the default), an empty password is left out (kept)."""
    spec: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    errors = FormErrors()
    for f in fields:
        if f.widget == "checkbox":
            spec[f.name] = shown[f.key] = form.get(f.key) in ("on", "true", "1", "yes")
            continue
        raw = form.get(f.key)
        value = raw if isinstance(raw, str) else ""
        if f.widget == "lines":
            shown[f.key] = value
            items = [x.strip() for x in value.splitlines() if x.strip()]
            if items or not f.required:
                spec[f.name] = items
            elif editing:
                spec[f.name] = None
            continue
        value = value.strip()
        if not f.secret:
            shown[f.key] = value
        if not value:
            if editing and not f.secret:
                spec[f.name] = None
            continue
        if f.widget == "number":
            spec[f.name] = _number(value)
        elif f.widget == "json":
            try:
                spec[f.name] = json.loads(value)
            except ValueError:
                errors.fields[f.key] = tr.gettext("must be JSON")
        else:
            spec[f.name] = value
    return spec, shown, errors


def errors_for(tr: Translator, exc: ProblemError | ValidationError, shown: set[str]) -> FormErrors:
    """The service's 422 beside each field it names (``spec.text`` beside the spec's
    ``text``); what names no input of the form is said above it, so nothing is lost."""
    out = FormErrors()
    found: list[tuple[str, str]] = []
    if isinstance(exc, ValidationError):
        for e in exc.errors():
            where = ".".join(str(p) for p in e["loc"] if "[" not in str(p)) or "form"
            found.append((where, str(e["msg"]).removeprefix("Value error, ")))
    else:
        found = [(str(item["field"]), str(item["reason"])) for item in exc.errors]
        if not exc.errors or exc.status != 422:
            out.general.append(tr.problem(exc.detail))
    for where, reason in found:
        if where in shown:
            out.fields.setdefault(where, tr.problem(reason))
        else:
            out.general.append(f"{where}: {tr.problem(reason)}")
    return out


# -- kinds, titles, links --------------------------------------------------------------------


def stored_kinds() -> list[ObjectKind]:
    return sorted(installed().stored(), key=lambda k: k.name)


def stored_kind_names() -> set[str]:
    return {k.name for k in installed().stored()}


def title_of(web: Web, kind: ObjectKind) -> str:
    """What a person calls the kind, in the page's language when the catalog knows it."""
    words = web._(kind.title or kind.name.replace("_", " "))
    return words[:1].upper() + words[1:]


def kind_links(web: Web, account: Account) -> list[dict[str, str]]:
    """Links from the account's page to each kind's list."""
    return [
        {"url": f"/accounts/{account.id}/objects/{k.name}", "title": title_of(web, k)}
        for k in stored_kinds()
    ]


def on_site(kind: ObjectKind) -> bool:
    """A kind attached to one of the account's sites (an SFTP login, a cron job)."""
    return kind.placement == "site"


def _sites(web: Web, account: Account) -> list[Site]:
    return list(
        web.db.scalars(
            select(Site)
            .where(Site.account_id == account.id, Site.status != ObjectStatus.deleting)
            .order_by(Site.domain)
        )
    )


def _load(web: Web, kind_name: str, obj_id: int, write: bool) -> tuple[ObjectKind, PluginObject]:
    """The object if the user may see (or change) its account, and is of that kind: 404
    otherwise, as the API answers."""
    kind = service.kind_of(kind_name)
    get = get_writable if write else get_visible
    obj = get(web.db, web.p, PluginObject, obj_id)
    if obj.kind != kind.name:
        raise NotFound()
    return kind, obj


# -- pages -----------------------------------------------------------------------------------


@router.get("/accounts/{account_id}/objects/{kind_name}")
def list_objects(account_id: int, kind_name: str, web: WebDep) -> Response:
    account = account_of(web, account_id)
    kind = service.kind_of(kind_name)
    fields = [f for f in spec_fields(kind, web.tr) if not f.secret][:LIST_COLUMNS]
    stmt = select(PluginObject).where(
        PluginObject.account_id == account.id, PluginObject.kind == kind.name
    )
    page = page_of(web, stmt, PluginObject.id)
    site_ids = {o.site_id for o in page.rows if o.site_id is not None}
    domains: dict[int, str] = {
        site_id: domain
        for site_id, domain in web.db.execute(
            select(Site.id, Site.domain).where(Site.id.in_(site_ids))
        )
    }
    return render_flashed(
        web,
        "panel/objects/list.html",
        account=account,
        kind=kind,
        title=title_of(web, kind),
        fields=fields,
        objects=page.rows,
        page=page,
        on_site=on_site(kind),
        domains=domains,
        writable=web.can_write(account.id),
    )


def actions_of(web: Web, obj: PluginObject | None) -> list[Action]:
    """The links and buttons the object's kind has beyond the form (``ACTIONS``)."""
    if obj is None or obj.kind not in ACTIONS:
        return []
    return ACTIONS[obj.kind](web, obj)


def _form(
    web: Web,
    account: Account,
    kind: ObjectKind,
    status: int = 200,
    obj: PluginObject | None = None,
    **ctx: Any,
) -> Response:
    fields = spec_fields(kind, web.tr)
    ctx.setdefault("errors", FormErrors())
    ctx.setdefault("values", form_values(fields, obj.spec if obj else {}))
    site_id = obj.site_id if obj else None
    return render(
        web,
        "panel/objects/form.html",
        status,
        account=account,
        kind=kind,
        title=title_of(web, kind),
        fields=fields,
        obj=obj,
        site_choices=[("", "—")] + [(str(s.id), s.domain) for s in _sites(web, account)]
        if on_site(kind)
        else [],
        on_site=on_site(kind),
        site=web.db.get(Site, site_id) if site_id else None,
        writable=web.can_write(account.id),
        actions=actions_of(web, obj),
        **ctx,
    )


@router.get("/accounts/{account_id}/objects/{kind_name}/new")
def new_object(account_id: int, kind_name: str, web: WebDep) -> Response:
    account = account_of(web, account_id, Role.manager)
    return _form(web, account, service.kind_of(kind_name))


@router.post("/accounts/{account_id}/objects/{kind_name}")
def create_object(account_id: int, kind_name: str, web: WebDep, form: CsrfForm) -> Response:
    account = account_of(web, account_id, Role.manager)
    kind = service.kind_of(kind_name)
    fields = spec_fields(kind, web.tr)
    spec, shown, errors = read_spec(web.tr, fields, form)
    name = text(form, "name").lower()
    values: dict[str, Any] = {"name": name, **shown}
    body: dict[str, Any] = {"account_id": account.id, "name": name, "spec": spec}
    if on_site(kind):
        values["site_id"] = text(form, "site_id")
        body["site_id"] = values["site_id"] or None
    if errors:
        return _form(web, account, kind, 422, errors=errors, values=values)

    def write() -> PluginObject:
        data = ObjectCreate.model_validate(body)
        obj = service.create(web.db, web.p, kind, data)
        created(web, obj, {"kind": kind.name, "name": obj.name, "spec": without_secrets(obj.spec)})
        return obj

    inputs = {"name", "site_id", *(f.key for f in fields)}
    made = attempt_with(web, write, inputs)
    if isinstance(made, FormErrors):
        return _form(web, account, kind, 422, errors=made, values=values)
    return redirect(
        f"/accounts/{account.id}/objects/{kind.name}",
        web._("%(name)s created; it is pending until its host carries it.") % {"name": made.name},
    )


def attempt_with(web: Web, write: Any, inputs: set[str]) -> Any:
    """``attempt``, with the errors placed beside the spec's own inputs."""
    try:
        return write()
    except (ProblemError, ValidationError) as exc:
        web.db.rollback()
        return errors_for(web.tr, exc, inputs)


@router.get("/objects/{kind_name}/{obj_id}")
def edit_object(kind_name: str, obj_id: int, web: WebDep) -> Response:
    kind, obj = _load(web, kind_name, obj_id, write=False)
    return _form(web, account_of(web, obj.account_id), kind, obj=obj)


@router.post("/objects/{kind_name}/{obj_id}")
def update_object(kind_name: str, obj_id: int, web: WebDep, form: CsrfForm) -> Response:
    """The form's fields as a merge patch, as the API's PATCH: a field the form does not
    show (a password's hash) stays, and an empty password input keeps the password."""
    kind, obj = _load(web, kind_name, obj_id, write=True)
    account = account_of(web, obj.account_id)
    fields = spec_fields(kind, web.tr)
    spec, shown, errors = read_spec(web.tr, fields, form, editing=True)
    if errors:
        return _form(web, account, kind, 422, obj=obj, errors=errors, values=shown)

    def write() -> None:
        updated(web, obj, service.update(web.db, web.p, obj, ObjectUpdate(spec=spec)))

    failed = attempt_with(web, write, {f.key for f in fields})
    if isinstance(failed, FormErrors):
        return _form(web, account, kind, 422, obj=obj, errors=failed, values=shown)
    return redirect(
        f"/accounts/{account.id}/objects/{kind.name}",
        web._("%(name)s saved.") % {"name": obj.name},
    )


@router.get("/objects/{kind_name}/{obj_id}/delete")
def confirm_delete(kind_name: str, obj_id: int, web: WebDep) -> Response:
    kind, obj = _load(web, kind_name, obj_id, write=False)
    return render(
        web,
        "panel/objects/delete.html",
        kind=kind,
        title=title_of(web, kind),
        obj=obj,
        errors=FormErrors(),
    )


@router.post("/objects/{kind_name}/{obj_id}/delete")
def delete_object(kind_name: str, obj_id: int, web: WebDep, form: CsrfForm) -> Response:
    kind, obj = _load(web, kind_name, obj_id, write=False)
    try:
        kind, obj = _load(web, kind_name, obj_id, write=True)
        service.mark_deleting(web.db, obj)
        finish_delete(web.db, web.p, obj, obj.name)
    except ProblemError as exc:
        if exc.status == 404:
            raise
        web.db.rollback()
        return render(
            web,
            "panel/objects/delete.html",
            exc.status,
            kind=kind,
            title=title_of(web, kind),
            obj=obj,
            errors=errors_for(web.tr, exc, set()),
        )
    return redirect(
        f"/accounts/{obj.account_id}/objects/{kind.name}",
        web._("Deleting %(name)s.") % {"name": obj.name},
    )
