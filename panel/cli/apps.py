"""``konbit platforms`` and ``konbit apps``: platforms built, listed, retired; a site's
application installed and its sites updated, through ``/api/v1/platforms`` and
``/api/v1/sites/{id}/app``.  ``--wait`` follows the task like ``konbit tasks wait``."""

from __future__ import annotations

from typing import Annotated

import typer

from panel.cli.client import Api, JsonOpt, print_rows
from panel.cli.lifecycle import TASK_COLUMNS, WaitOpt, follow

PLATFORM_COLUMNS = ("id", "name", "app", "version", "enabled", "sites", "auto_update", "source")
WINDOW_COLUMNS = ("id", "name", "auto_update", "window_weekday", "window_hour", "window_hours")
INVENTORY_COLUMNS = ("site_id", "domain", "account", "app", "version", "platform", "behind")
APP_COLUMNS = ("site_id", "app", "platform_id", "version", "status", "status_reason")
STATUS_COLUMNS = (
    "app", "newest_platform", "newest_version", "sites", "on_platforms", "by_hand", "behind",
)  # fmt: skip


def platforms(as_json: JsonOpt = False) -> None:
    """The platforms sites can be installed on, with how many sites each carries."""
    print_rows(Api().call("GET", "/platforms")["items"], PLATFORM_COLUMNS, as_json)


def create(
    name: Annotated[str, typer.Argument(help="e.g. wordpress-6.1.9; a new build, a new name")],
    debian: Annotated[
        str | None, typer.Option(help="a Debian package: wordpress, mediawiki, dokuwiki")
    ] = None,
    archive: Annotated[str | None, typer.Option(help="an archive on the panel machine")] = None,
    sha256: Annotated[str | None, typer.Option(help="the archive's published SHA-256")] = None,
    as_json: JsonOpt = False,
) -> None:
    """Build a platform (staff) from a Debian package or from an archive and its checksum."""
    if (debian is None) == (archive is None):
        raise typer.BadParameter("give either --debian PACKAGE or --archive PATH --sha256 HEX")
    source = (
        {"type": "debian", "package": debian}
        if debian
        else {"type": "archive", "path": archive, "sha256": sha256 or ""}
    )
    made = Api().call("POST", "/platforms", json={"name": name, "source": source})
    print_rows([made], PLATFORM_COLUMNS, as_json)


def retire(
    platform_id: int,
    undo: Annotated[bool, typer.Option("--undo", help="bring it back")] = False,
    as_json: JsonOpt = False,
) -> None:
    """No new site on this platform (its sites keep running)."""
    got = Api().call("PATCH", f"/platforms/{platform_id}", json={"enabled": undo})
    print_rows([got], PLATFORM_COLUMNS, as_json)


def update(
    platform_id: int,
    target: Annotated[int, typer.Option("--to", help="the platform the sites move to")],
    site: Annotated[list[int] | None, typer.Option(help="only this site (repeat)")] = None,
    batch: Annotated[int, typer.Option(min=1, max=100)] = 10,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move a platform's sites to another (backup, switch, updater, health check; rolled
    back to the backup on any failure)."""
    api = Api()
    body = {"target_id": target, "site_ids": site or None, "batch": batch}
    task = api.call("POST", f"/platforms/{platform_id}/update", json=body)
    if not (wait and as_json):
        print_rows([task], TASK_COLUMNS, as_json)
    if wait:
        follow(api, task["id"], 24 * 3600.0, as_json)


def auto(
    platform_id: int,
    off: Annotated[bool, typer.Option("--off", help="turn automatic updates off")] = False,
    weekday: Annotated[
        int | None, typer.Option(min=0, max=6, help="0 is Monday; left out: every day")
    ] = None,
    hour: Annotated[int, typer.Option(min=0, max=23, help="the window's start, UTC")] = 3,
    hours: Annotated[int, typer.Option(min=1, max=12, help="the window's length")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Automatic updates: in each maintenance window, this platform's sites move to the
    newest platform of their application (backup, updater, health check, rollback)."""
    body: dict[str, object] = {"auto_update": not off}
    if not off:
        body.update(window_weekday=weekday, window_hour=hour, window_hours=hours)
    got = Api().call("PATCH", f"/platforms/{platform_id}", json=body)
    print_rows([got], WINDOW_COLUMNS, as_json)


def install(
    site_id: int,
    platform: Annotated[int, typer.Option(help="the platform's id (`konbit platforms list`)")],
    title: Annotated[str, typer.Option(help="the site's or wiki's name")],
    email: Annotated[str, typer.Option(help="the admin's e-mail address")],
    admin: Annotated[str, typer.Option(help="the admin's login")] = "admin",
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Install a platform's application on a site; prints the admin password once."""
    api = Api()
    body = {"platform_id": platform, "title": title, "admin_email": email, "admin_user": admin}
    got = api.call("POST", f"/sites/{site_id}/app", json=body)
    if as_json and not wait:
        print_rows([got], ("task_id", "admin_password"), True)
    else:
        typer.echo(f"admin login: {admin}  password: {got['admin_password']}  (shown once)")
    if wait:
        follow(api, got["task_id"], 3600.0, as_json)


def show(site_id: int, as_json: JsonOpt = False) -> None:
    """A site's application: which, on which platform, at which version."""
    print_rows([Api().call("GET", f"/sites/{site_id}/app")], APP_COLUMNS, as_json)


def status(as_json: JsonOpt = False) -> None:
    """Per application, its newest platform and how many sites are behind it (staff)."""
    print_rows(Api().call("GET", "/apps/status")["items"], STATUS_COLUMNS, as_json)


def inventory(
    app: Annotated[str | None, typer.Option(help="only this application")] = None,
    behind: Annotated[bool, typer.Option("--behind", help="only sites behind")] = False,
    csv: Annotated[bool, typer.Option("--csv", help="the whole list as CSV")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Every site's application and version, installed by hand or on a platform (staff)."""
    params: dict[str, object] = {k: v for k, v in (("app", app),) if v}
    if behind:
        params["behind"] = "true"
    api = Api()
    if csv:
        got = api.response("GET", "/apps/inventory", params=params, headers={"Accept": "text/csv"})
        typer.echo(got.text, nl=False)
        return
    rows: list[dict[str, object]] = []
    query: dict[str, object] = {**params, "limit": 1000}
    while True:
        page = api.call("GET", "/apps/inventory", params=query)
        rows += page["items"]
        if not page["next_cursor"]:
            break
        query["cursor"] = page["next_cursor"]
    print_rows(rows, INVENTORY_COLUMNS, as_json)


def scan(wait: WaitOpt = False, as_json: JsonOpt = False) -> None:
    """Read every web host's sites for their application now (the worker does it daily)."""
    api = Api()
    task = api.call("POST", "/apps/scan")
    if not (wait and as_json):
        print_rows([task], TASK_COLUMNS, as_json)
    if wait:
        follow(api, task["id"], 3600.0, as_json)


def register(app: typer.Typer) -> None:
    plat = typer.Typer(no_args_is_help=True, help="Platforms: shared application codebases")
    plat.command("list")(platforms)
    plat.command("create")(create)
    plat.command("retire")(retire)
    plat.command("update")(update)
    plat.command("auto")(auto)
    app.add_typer(plat, name="platforms")
    apps = typer.Typer(
        no_args_is_help=True, help="Sites' applications: install, show, update status, inventory"
    )
    apps.command("install")(install)
    apps.command("show")(show)
    apps.command("status")(status)
    apps.command("inventory")(inventory)
    apps.command("scan")(scan)
    app.add_typer(apps, name="apps")
