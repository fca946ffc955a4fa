"""Client commands that start lifecycle tasks (backup, restore, clone, move) and follow them.

Each starting command prints the queued task; ``--wait`` then follows it like
``konbit tasks wait``: new log lines as they come, exit 0 when it succeeded, 1 when it
failed (its error on stderr) or did not end in time.
"""

from __future__ import annotations

import enum
import json
import time
from typing import Annotated, Any

import typer

from panel.cli.client import Api, JsonOpt, print_rows

TASK_COLUMNS = ("id", "kind", "status")
BACKUP_COLUMNS = ("id", "site_id", "domain", "size_bytes", "databases", "scheduled", "created_at")
SCHEDULE_COLUMNS = ("site_id", "frequency", "hour", "weekday", "next_run_at", "last_task_id")
POLL_SECONDS = 0.5
QUEUED_HINT_SECONDS = 15.0
WORKER_HINT = "is `konbit worker` running?"

WaitOpt = Annotated[
    bool,
    typer.Option(
        "--wait",
        help="Follow the task to its end (as `konbit tasks wait`); with --json, the log "
        "goes to stderr and the finished task alone to stdout",
    ),
]
TimeoutOpt = Annotated[
    float, typer.Option("--timeout", min=0, help="Give up waiting after this many seconds")
]
DatabasesOpt = Annotated[
    list[str] | None,
    typer.Option("--database", help="A database of the account to include (repeat); default: all"),
]
HostOpt = Annotated[int, typer.Option("--host", help="The host to move to")]


class Frequency(enum.StrEnum):
    daily = "daily"
    weekly = "weekly"
    off = "off"


def _new_log(shown: str, log: str) -> str:
    """What ``log`` adds to ``shown``.  The panel keeps only a task log's last 100,000
    characters, so a long log may have lost its start: find where ``shown`` ended in it."""
    if log.startswith(shown):
        return log[len(shown) :]
    tail = shown[-200:]
    at = log.rfind(tail) if tail else -1
    return log[at + len(tail) :] if at >= 0 else log


def follow(api: Api, task_id: int, timeout: float, as_json: bool = False) -> None:
    """Print the task's log as it grows until it ends; exit 1 unless it succeeded."""
    deadline = time.monotonic() + timeout
    queued_hint_at = time.monotonic() + QUEUED_HINT_SECONDS
    shown = ""
    try:
        while True:
            task = api.call("GET", f"/tasks/{task_id}")
            added = _new_log(shown, task["log"])
            if added:
                typer.echo(added, nl=False, err=as_json)
            shown = task["log"]
            if task["status"] in ("succeeded", "failed"):
                break
            now = time.monotonic()
            if now >= deadline:
                if task["status"] == "queued":
                    why = f"still queued after {timeout:g}s; {WORKER_HINT}"
                else:
                    why = f"still running ({task['progress']}%) after {timeout:g}s"
                typer.echo(
                    f"task {task_id}: {why} (it goes on: `konbit tasks wait {task_id}`)",
                    err=True,
                )
                raise typer.Exit(1)
            if task["status"] == "queued" and now >= queued_hint_at:
                typer.echo(
                    f"task {task_id}: queued for {QUEUED_HINT_SECONDS:g}s; {WORKER_HINT}", err=True
                )
                queued_hint_at = float("inf")
            time.sleep(min(POLL_SECONDS, max(deadline - now, 0.0)))
    except KeyboardInterrupt:
        typer.echo(f"\ntask {task_id} goes on without you: `konbit tasks wait {task_id}`", err=True)
        raise typer.Exit(130) from None
    if as_json:
        typer.echo(json.dumps(task, indent=2))
    if task["status"] == "failed":
        typer.echo(f"task {task_id} ({task['kind']}) failed: {task['error']}", err=True)
        raise typer.Exit(1)
    if not as_json:
        result = f" {json.dumps(task['result'])}" if task["result"] else ""
        typer.echo(f"task {task_id} ({task['kind']}) succeeded{result}")


def _started(api: Api, task: dict[str, Any], wait: bool, as_json: bool) -> None:
    """Print the queued task, then follow it if asked."""
    if not (wait and as_json):  # --json --wait: one JSON document, the finished task
        print_rows([task], TASK_COLUMNS, as_json)
    if wait:
        follow(api, task["id"], 24 * 3600.0, as_json)


def tasks_wait(
    task_id: int,
    timeout: TimeoutOpt = 3600.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Log to stderr, the finished task as JSON")
    ] = False,
) -> None:
    """Follow a task, printing its log as it grows.

    Exits 0 when it succeeded, 1 when it failed or is not done in time."""
    follow(Api(), task_id, timeout, as_json)


def backup(
    site_id: int,
    databases: DatabasesOpt = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Back a site up now (files and databases) to a backup host."""
    api = Api()
    body = {"databases": databases} if databases else None
    _started(api, api.call("POST", f"/sites/{site_id}/backups", json=body), wait, as_json)


def backups_list(
    site: Annotated[int | None, typer.Option("--site", help="One site's backups")] = None,
    account: Annotated[int | None, typer.Option("--account", help="One account's")] = None,
    deleted: Annotated[
        bool, typer.Option("--deleted", help="Only backups of deleted sites")
    ] = False,
    all_pages: Annotated[bool, typer.Option("--all", help="Follow every page")] = False,
    as_json: JsonOpt = False,
) -> None:
    """List backups, newest first, with those of deleted sites (no site_id).

    Restore one with `konbit restore BACKUP_ID`."""
    api = Api()
    rows: list[dict[str, Any]] = []
    if site is not None:
        if account is not None or deleted:
            raise typer.BadParameter("--site lists one live site's backups; drop it")
        rows = api.call("GET", f"/sites/{site}/backups")["items"]
    else:
        params: dict[str, str] = {}
        if account is not None:
            params["account_id"] = str(account)
        if deleted:
            params["deleted"] = "true"
        while True:
            page = api.call("GET", "/backups", params=params)
            rows.extend(page["items"])
            if not all_pages or not page["next_cursor"]:
                break
            params["cursor"] = page["next_cursor"]
    if not as_json:
        rows = [{**r, "databases": [d["name"] for d in r["databases"]]} for r in rows]
    print_rows(rows, BACKUP_COLUMNS, as_json)


def restore(
    backup_id: int,
    domain: Annotated[
        str | None,
        typer.Option(
            help="Restore as a new site of this name; default: in place (live site) or "
            "under its old name (deleted site)"
        ),
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Restore a backup, of a live or of a deleted site (`konbit backups list`)."""
    api = Api()
    body = {"domain": domain} if domain else None
    _started(api, api.call("POST", f"/backups/{backup_id}/restore", json=body), wait, as_json)


def clone(
    site_id: int,
    domain: str,
    databases: DatabasesOpt = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Copy a site to another name of its account.

    Files, and databases under new names (the task's params name them) with new users."""
    api = Api()
    body: dict[str, Any] = {"domain": domain}
    if databases:
        body["databases"] = databases
    _started(api, api.call("POST", f"/sites/{site_id}/clone", json=body), wait, as_json)


def move_site(site_id: int, host: HostOpt, wait: WaitOpt = False, as_json: JsonOpt = False) -> None:
    """Move a site to another web host (POST /sites/{id}/migrate).

    It serves from the old host until the new one answers for it."""
    api = Api()
    task = api.call("POST", f"/sites/{site_id}/migrate", json={"host_id": host})
    _started(api, task, wait, as_json)


def move_database(
    database_id: int, host: HostOpt, wait: WaitOpt = False, as_json: JsonOpt = False
) -> None:
    """Move a database and its users to another db host (POST /databases/{id}/migrate)."""
    api = Api()
    task = api.call("POST", f"/databases/{database_id}/migrate", json={"host_id": host})
    _started(api, task, wait, as_json)


def move_account(
    account_id: int,
    web_host: Annotated[int | None, typer.Option("--web-host", help="Move every site here")] = None,
    db_host: Annotated[
        int | None, typer.Option("--db-host", help="Move every database here")
    ] = None,
    wait: WaitOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Move an account's sites and/or databases (POST /accounts/{id}/migrate).

    One object at a time; what fails stays where it was and the task's error names it."""
    api = Api()
    body = {k: v for k, v in (("web_host_id", web_host), ("db_host_id", db_host)) if v is not None}
    task = api.call("POST", f"/accounts/{account_id}/migrate", json=body)
    _started(api, task, wait, as_json)


def schedule(
    site_id: int,
    frequency: Annotated[
        Frequency | None,
        typer.Argument(help="daily, weekly or off; none: show the current schedule"),
    ] = None,
    hour: Annotated[int | None, typer.Option(min=0, max=23, help="Hour (UTC); default 3")] = None,
    weekday: Annotated[
        int | None, typer.Option(min=0, max=6, help="Weekly: 0 is Monday (the default)")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Back a site up daily or weekly at an hour (UTC), or no more (off)."""
    api = Api()
    if frequency is None:
        row = api.call("GET", f"/sites/{site_id}/backup-schedule")
    elif frequency is Frequency.off:
        api.call("DELETE", f"/sites/{site_id}/backup-schedule")
        typer.echo(f"site {site_id}: no scheduled backups (the backups made stay)")
        return
    else:
        body: dict[str, Any] = {"frequency": frequency.value}
        if hour is not None:
            body["hour"] = hour
        if weekday is not None:
            body["weekday"] = weekday
        row = api.call("PUT", f"/sites/{site_id}/backup-schedule", json=body)
    print_rows([row], SCHEDULE_COLUMNS, as_json)


def register(app: typer.Typer, tasks_app: typer.Typer) -> None:
    """The lifecycle commands on ``app``, and ``wait`` on the ``tasks`` group."""
    tasks_app.command("wait")(tasks_wait)
    app.command("backup")(backup)
    backups_app = typer.Typer(no_args_is_help=True, help="Backups (through the REST API)")
    backups_app.command("list")(backups_list)
    app.add_typer(backups_app, name="backups")
    app.command("restore")(restore)
    app.command("clone")(clone)
    app.command("schedule")(schedule)
    move_app = typer.Typer(
        no_args_is_help=True,
        help="Staff: move sites, databases or accounts to other hosts, as tasks "
        "(`konbit migrate` is the panel's own schema upgrade, not this).",
    )
    move_app.command("site")(move_site)
    move_app.command("database")(move_database)
    move_app.command("account")(move_account)
    app.add_typer(move_app, name="move")
