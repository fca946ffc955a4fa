"""``konbit objects``: objects of plugin-declared kinds, through ``/api/v1/objects/{kind}``.

A spec is given as ``--spec key=value`` (repeat) or ``--spec-json '{...}'``. A value is
read as its field's type when the kind is installed where the command runs (a text field
keeps ``123`` as text), else as JSON when it parses (numbers, ``true``, lists), else as
text; a list field also takes ``a,b``. ``update`` sends a merge patch, as the API takes
it: the fields given change, ``key=null`` puts one back to its default, the others stay
(a password's hash too). ``--replace`` resets every field not given, with ``If-Match``
so that a change made meanwhile is refused (412) instead of overwritten.
"""

from __future__ import annotations

import json
import types
import typing
from typing import Annotated, Any

import typer

from panel.cli.client import Api, JsonOpt, print_rows
from provisioners.api import ObjectKind

COLUMNS = ("id", "account_id", "name", "host_id", "site_id", "status", "status_reason", "spec")
KIND_COLUMNS = ("name", "title", "role", "placement", "fields")
SECRET_WORDS = ("password", "secret", "token", "key")

SpecOpt = Annotated[
    list[str] | None,
    typer.Option("--spec", help="A spec field as key=value (repeat); JSON values allowed"),
]
SpecJsonOpt = Annotated[str | None, typer.Option("--spec-json", help="The spec as one JSON object")]
KindArg = Annotated[str, typer.Argument(help="The kind (see `konbit objects kinds`)")]


def _local_kind(name: str) -> ObjectKind | None:
    """The kind as the plugins installed here declare it, if they do (the panel's own
    plugins when the command runs on the panel machine)."""
    from provisioners.registry import PluginError, installed

    try:
        kind = installed().kinds.get(name)
    except PluginError:  # no plugin loads here: the panel still checks every value
        return None
    return kind if kind is not None and kind.spec is not None else None


def _field_kind(kind: ObjectKind | None, key: str) -> str:
    """``text``, ``list`` or ``other`` for a spec field, from the kind's model if known."""
    if kind is None or kind.spec is None or key not in kind.spec.model_fields:
        return "other"
    annotation: Any = kind.spec.model_fields[key].annotation
    while True:  # Annotated[X, ...] | None -> X
        origin = typing.get_origin(annotation)
        args = [a for a in typing.get_args(annotation) if a is not type(None)]
        if origin is typing.Annotated or (
            origin in (typing.Union, types.UnionType) and len(args) == 1
        ):
            annotation = args[0]
        else:
            break
    if annotation is str:
        return "text"
    if typing.get_origin(annotation) in (list, tuple, set, frozenset):
        return "list"
    return "other"


def parse_spec(pairs: list[str], spec_json: str | None, kind: ObjectKind | None) -> dict[str, Any]:
    """The spec the options give (see the module's docstring)."""
    spec: dict[str, Any] = {}
    if spec_json is not None:
        try:
            loaded = json.loads(spec_json)
        except ValueError as exc:
            raise typer.BadParameter(f"--spec-json is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise typer.BadParameter("--spec-json must be a JSON object")
        spec.update(loaded)
    for item in pairs:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"--spec '{item}' is not key=value")
        what = _field_kind(kind, key)
        if what == "text":
            spec[key] = raw
            continue
        try:
            value: Any = json.loads(raw)
        except ValueError:
            value = raw
        if what == "list" and not isinstance(value, list):
            value = [x.strip() for x in raw.split(",") if x.strip()]
        spec[key] = value
    return spec


def _row(obj: dict[str, Any]) -> dict[str, Any]:
    """An object as a table row: its spec as ``key=value`` words, secrets hidden."""
    spec = obj.get("spec") or {}
    words = [
        f"{k}=***" if any(w in k for w in SECRET_WORDS) else f"{k}={json.dumps(v)}"
        for k, v in spec.items()
    ]
    return {**obj, "spec": " ".join(words)}


def _print(objs: list[dict[str, Any]], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(objs, indent=2))
    else:
        print_rows([_row(o) for o in objs], COLUMNS, False)


def kinds(as_json: JsonOpt = False) -> None:
    """The kinds of objects the installed plugins declare with a spec (as installed where
    this runs: the panel machine's, there)."""
    from provisioners.registry import installed

    rows = [
        {
            "name": k.name,
            "title": k.title,
            "role": k.role,
            "placement": k.placement,
            "fields": list(k.spec.model_fields) if k.spec is not None else [],
        }
        for k in sorted(installed().stored(), key=lambda k: k.name)
    ]
    print_rows(rows, KIND_COLUMNS, as_json)


def list_objects(
    kind: KindArg,
    account: Annotated[int | None, typer.Option("--account", help="Only this account's")] = None,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List the objects of a kind you can see."""
    api = Api()
    params: dict[str, str] = {} if account is None else {"account_id": str(account)}
    rows: list[dict[str, Any]] = []
    while True:
        page = api.call("GET", f"/objects/{kind}", params=params)
        rows.extend(page["items"])
        if not all_pages or not page["next_cursor"]:
            break
        params["cursor"] = page["next_cursor"]
    _print(rows, as_json)


def create(
    kind: KindArg,
    account: Annotated[int, typer.Option("--account", help="The account it belongs to")],
    name: Annotated[str, typer.Option("--name", help="Its name (lower-case, digits, '-')")],
    site: Annotated[
        int | None, typer.Option("--site", help="The account's site (kinds attached to sites)")
    ] = None,
    host: Annotated[
        int | None, typer.Option("--host", help="A host of the kind's role (default: placed)")
    ] = None,
    spec: SpecOpt = None,
    spec_json: SpecJsonOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Create an object; its spec is checked by the plugin's own model (a 422 names the
    field at fault)."""
    body: dict[str, Any] = {
        "account_id": account,
        "name": name,
        "spec": parse_spec(spec or [], spec_json, _local_kind(kind)),
    }
    if site is not None:
        body["site_id"] = site
    if host is not None:
        body["host_id"] = host
    _print([Api().call("POST", f"/objects/{kind}", json=body)], as_json)


def show(kind: KindArg, obj_id: int, as_json: JsonOpt = True) -> None:
    """Show one object (JSON)."""
    obj = Api().call("GET", f"/objects/{kind}/{obj_id}")
    _print([obj], False) if not as_json else typer.echo(json.dumps(obj, indent=2))


def update(
    kind: KindArg,
    obj_id: int,
    spec: SpecOpt = None,
    spec_json: SpecJsonOpt = None,
    replace: Annotated[
        bool, typer.Option("--replace", help="The given spec replaces the whole spec")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Change spec fields (the others keep their values, unless --replace)."""
    if not spec and spec_json is None:
        raise typer.BadParameter("give --spec key=value or --spec-json")
    changes = parse_spec(spec or [], spec_json, _local_kind(kind))
    api = Api()
    headers: dict[str, str] = {}
    if replace:  # null for every field shown and not given: its default again
        response = api.response("GET", f"/objects/{kind}/{obj_id}")
        changes = {**dict.fromkeys(response.json()["spec"]), **changes}
        headers = {"If-Match": response.headers["ETag"]} if "ETag" in response.headers else {}
    obj = api.call("PATCH", f"/objects/{kind}/{obj_id}", json={"spec": changes}, headers=headers)
    _print([obj], as_json)


def delete(kind: KindArg, obj_id: int, as_json: JsonOpt = False) -> None:
    """Delete an object: its hosts drop it, then the row goes."""
    _print([Api().call("DELETE", f"/objects/{kind}/{obj_id}")], as_json)


def register(app: typer.Typer) -> None:
    sub = typer.Typer(
        no_args_is_help=True,
        help="Objects of the kinds plugins declare (through the REST API)",
    )
    sub.command("kinds")(kinds)
    sub.command("list")(list_objects)
    sub.command("create")(create)
    sub.command("show")(show)
    sub.command("update")(update)
    sub.command("delete")(delete)
    app.add_typer(sub, name="objects")
