"""Client commands that call the REST API (``KONBIT_URL``, ``KONBIT_TOKEN``).

Fields are given as ``key=value``; a value that parses as JSON (numbers, ``null``, lists
like ``'["www.example.org"]'``) is sent as such, anything else as a string.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from typing import Annotated, Any

import httpx2 as httpx
import typer

from panel.core.validation import check_host_key, host_key_fingerprint


@dataclass(frozen=True)
class Resource:
    name: str
    path: str
    columns: tuple[str, ...]
    writable: bool = True
    updatable: bool = True


RESOURCES = (
    Resource("accounts", "accounts", ("id", "slug", "name", "status", "email")),
    Resource("users", "users", ("id", "email", "name", "is_staff", "is_active")),
    Resource(
        "tokens",
        "tokens",
        ("id", "name", "prefix", "scopes", "expires_at", "revoked_at"),
        updatable=False,
    ),
    Resource(
        "hosts",
        "hosts",
        ("id", "name", "address", "roles", "health", "desired_generation", "applied_generation"),
    ),
    Resource("domains", "domains", ("id", "account_id", "name", "status"), updatable=False),
    Resource(
        "sites", "sites", ("id", "account_id", "domain", "host_id", "php", "enabled", "status")
    ),
    Resource("mailboxes", "mailboxes", ("id", "account_id", "address", "quota_mb", "status")),
    Resource(
        "mail-aliases", "mail-aliases", ("id", "account_id", "address", "destinations", "status")
    ),
    Resource("lists", "lists", ("id", "account_id", "address", "policy", "status")),
    Resource(
        "databases",
        "databases",
        ("id", "account_id", "name", "engine", "host_id", "status"),
        updatable=False,
    ),
    Resource(
        "database-users",
        "database-users",
        ("id", "account_id", "name", "engine", "databases", "status"),
    ),
    Resource(
        "applies",
        "applies",
        ("id", "host_id", "generation", "result", "started_at"),
        writable=False,
        updatable=False,
    ),
    Resource(
        "tasks",
        "tasks",
        ("id", "account_id", "kind", "site_id", "status", "progress", "error", "created_at"),
        writable=False,
        updatable=False,
    ),
    Resource(
        "audit-events",
        "audit-events",
        ("id", "time", "actor_email", "action", "object_type", "object_id"),
        writable=False,
        updatable=False,
    ),
)


class Api:
    """A thin REST client; every error is printed as the API's problem detail."""

    def __init__(self) -> None:
        url = os.environ.get("KONBIT_URL", "http://127.0.0.1:8000").rstrip("/")
        token = os.environ.get("KONBIT_TOKEN")
        if not token:
            typer.echo("error: set KONBIT_TOKEN (create one with `konbit token create`)", err=True)
            raise typer.Exit(2)
        self.http = httpx.Client(
            base_url=f"{url}/api/v1", headers={"Authorization": f"Bearer {token}"}, timeout=30
        )

    def call(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.response(method, path, **kwargs)
        return response.json() if response.content else None

    def response(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """The answer, headers included (an ETag); an error is printed and exits."""
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            typer.echo(f"error: cannot reach the panel ({exc}); check KONBIT_URL", err=True)
            raise typer.Exit(2) from None
        if response.status_code >= 400:
            try:
                problem = response.json()
                typer.echo(f"error {response.status_code}: {problem.get('detail')}", err=True)
            except ValueError:
                typer.echo(f"error {response.status_code}: {response.text}", err=True)
            raise typer.Exit(1)
        return response


def parse_fields(fields: list[str]) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for item in fields:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"'{item}' is not key=value")
        try:
            data[key] = json.loads(raw)
        except ValueError:
            data[key] = raw
    return data


def _cell(value: Any) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return "" if value is None else str(value)


def print_rows(rows: list[dict[str, Any]], columns: tuple[str, ...], as_json: bool) -> None:
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = [list(columns)] + [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(row[i]) for row in table) for i in range(len(columns))]
    for row in table:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())


JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table")]
Fields = Annotated[list[str] | None, typer.Argument(help="key=value pairs")]


def _resource_app(res: Resource) -> typer.Typer:
    sub = typer.Typer(no_args_is_help=True, help=f"{res.name} (through the REST API)")

    @sub.command("list")
    def list_(
        filters: Fields = None,
        as_json: JsonOpt = False,
        all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    ) -> None:
        """List, with filters like account_id=3 status=failed q=text."""
        api = Api()
        params = {k: str(v) for k, v in parse_fields(filters or []).items()}
        rows: list[dict[str, Any]] = []
        while True:
            page = api.call("GET", f"/{res.path}", params=params)
            rows.extend(page["items"])
            if not all_pages or not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
        print_rows(rows, res.columns, as_json)

    @sub.command("show")
    def show(obj_id: int, as_json: JsonOpt = True) -> None:
        """Show one object (JSON)."""
        obj = Api().call("GET", f"/{res.path}/{obj_id}")
        print_rows([obj], res.columns, as_json) if not as_json else typer.echo(
            json.dumps(obj, indent=2)
        )

    if res.writable:

        @sub.command("create")
        def create(fields: Fields = None, as_json: JsonOpt = False) -> None:
            """Create from key=value fields (JSON values allowed)."""
            obj = Api().call("POST", f"/{res.path}", json=parse_fields(fields or []))
            print_rows([obj], res.columns + (("token",) if res.name == "tokens" else ()), as_json)

        @sub.command("delete")
        def delete(obj_id: int, as_json: JsonOpt = False) -> None:
            """Delete (objects on hosts are archived there first)."""
            obj = Api().call("DELETE", f"/{res.path}/{obj_id}")
            if obj:
                print_rows([obj], res.columns, as_json)

    if res.updatable:

        @sub.command("update")
        def update(obj_id: int, fields: Fields = None, as_json: JsonOpt = False) -> None:
            """Change fields given as key=value."""
            obj = Api().call("PATCH", f"/{res.path}/{obj_id}", json=parse_fields(fields or []))
            print_rows([obj], res.columns, as_json)

    return sub


def fetch_host_key(address: str, port: int) -> str:
    """The host's ed25519 key as it presents it now (compared with a fingerprint, never
    trusted blindly)."""
    import socket

    import paramiko

    sock = socket.create_connection((address, port), timeout=10)
    transport = paramiko.Transport(sock)
    try:
        transport.get_security_options().key_types = ("ssh-ed25519",)
        transport.start_client(timeout=10)
        key = transport.get_remote_server_key()
        return f"{key.get_name()} {key.get_base64()}"
    finally:
        transport.close()


def register(app: typer.Typer) -> dict[str, typer.Typer]:
    """One command group per REST resource on ``app``: the groups, by name."""
    groups = {res.name: _resource_app(res) for res in RESOURCES}
    for name, sub in groups.items():
        app.add_typer(sub, name=name)
    return groups


def register_hosts(app: typer.Typer) -> None:
    """``konbit host add`` (with the pinned key's fingerprint), through the REST API."""
    host_app = typer.Typer(no_args_is_help=True, help="Hosts (through the REST API)")
    app.add_typer(host_app, name="host")

    @host_app.command("add")
    def host_add(
        name: str,
        address: Annotated[str, typer.Option(help="IP address or DNS name")],
        role: Annotated[list[str], typer.Option(help="web, mail, db or lists (repeat)")],
        host_key: Annotated[str | None, typer.Option(help="The host's public key line")] = None,
        fingerprint: Annotated[
            str | None,
            typer.Option(
                help="SHA256:... of the host key (as `ssh-keygen -lf` prints it on the host); the "
                "key is fetched and pinned only if it matches"
            ),
        ] = None,
        port: Annotated[int, typer.Option(help="SSH port")] = 22,
        user: Annotated[str, typer.Option(help="SSH user (root, or a user with sudo)")] = "root",
        web_server: Annotated[str, typer.Option(help="nginx or apache2")] = "nginx",
        as_json: JsonOpt = False,
    ) -> None:
        """Add a host; its key is pinned from --host-key or checked against --fingerprint."""
        if host_key is None:
            if fingerprint is None:
                typer.echo(
                    "error: give --host-key or --fingerprint; a host key is never "
                    "trusted on first use",
                    err=True,
                )
                raise typer.Exit(2)
            host_key = fetch_host_key(address, port)
            seen = host_key_fingerprint(host_key)
            if seen != fingerprint.strip():
                typer.echo(
                    f"error: the host presents {seen}, not {fingerprint}; "
                    "check you reach the right machine",
                    err=True,
                )
                raise typer.Exit(1)
        else:
            try:
                host_key = check_host_key(host_key)
            except ValueError as exc:
                raise typer.BadParameter(str(exc)) from None
        body = {
            "name": name,
            "address": address,
            "ssh_port": port,
            "ssh_user": user,
            "host_key": host_key,
            "roles": role,
            "settings": {"web_server": web_server},
        }
        obj = Api().call("POST", "/hosts", json=body)
        print_rows([obj], ("id", "name", "address", "roles", "host_key_fingerprint"), as_json)

    @host_app.command("plan")
    def host_plan(host_id: int, as_json: JsonOpt = False) -> None:
        """Show what a reconcile would change on the host now (and any drift)."""
        plan = Api().call("GET", f"/hosts/{host_id}/plan")
        if as_json:
            typer.echo(json.dumps(plan, indent=2))
            return
        typer.echo(f"# {plan['summary']}" + (" (nothing to do)" if plan["noop"] else ""))
        typer.echo(plan["diff"], nl=False)

    @host_app.command("reconcile")
    def host_reconcile(
        host_id: int,
        wait: Annotated[float, typer.Option(help="Seconds to wait for the result")] = 60.0,
    ) -> None:
        """Ask the worker to reconcile the host now, and wait for the result."""
        api = Api()
        host = api.call("POST", f"/hosts/{host_id}/reconcile")
        target = host["desired_generation"]
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            host = api.call("GET", f"/hosts/{host_id}")
            if host["applied_generation"] >= target:
                typer.echo(f"{host['name']}: applied generation {host['applied_generation']}")
                return
            if host["health"] in ("failed", "unreachable") and host["health_reason"]:
                typer.echo(
                    f"{host['name']}: {host['health']}: {host['health_reason']} "
                    "(the worker retries with backoff)",
                    err=True,
                )
                raise typer.Exit(1)
            time.sleep(0.5)
        typer.echo(
            f"{host['name']}: not applied after {wait:.0f}s; is `konbit worker` running?", err=True
        )
        raise typer.Exit(1)
