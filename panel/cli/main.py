"""``konbit``: local administration (init, serve, migrate, admin, token) and API client commands."""

from __future__ import annotations

import datetime as dt
import getpass
import os
import sys
from pathlib import Path
from typing import Annotated

import typer

from panel.cli import apps, client, cron, lifecycle, objects
from panel.core.settings import Settings, load_settings

app = typer.Typer(no_args_is_help=True, add_completion=False, help="Konbit hosting control panel.")
admin_app = typer.Typer(no_args_is_help=True, help="Staff users (local, on the panel machine).")
token_app = typer.Typer(no_args_is_help=True, help="API tokens (local, on the panel machine).")
audit_app = typer.Typer(no_args_is_help=True, help="Audit trail maintenance.")
app.add_typer(admin_app, name="admin")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
# In this order: `konbit --help` lists the commands as they are added.
lifecycle.register(app, client.register(app)["tasks"])
client.register_hosts(app)
objects.register(app)
cron.register(app)
apps.register(app)


def _settings(data_dir: Path | None) -> Settings:
    if data_dir is not None:
        os.environ["KONBIT_DATA_DIR"] = str(data_dir)
    return load_settings()


def _db(settings: Settings):  # type: ignore[no-untyped-def]
    from panel.core.db import Database

    return Database(settings.effective_database_url)


DataDir = Annotated[Path | None, typer.Option(help="Data directory (KONBIT_DATA_DIR)")]


@app.command()
def migrate(data_dir: DataDir = None) -> None:
    """Bring the panel database to the latest schema (keeps its data)."""
    from panel.core.migrate import upgrade

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    upgrade(settings.effective_database_url)
    typer.echo("database is up to date", err=True)


@app.command()
def init(
    data_dir: DataDir = None,
    admin_email: Annotated[str, typer.Option(help="Email of the first staff user")] = (
        "admin@konbit.localhost"
    ),
) -> None:
    """Create the data directory and database, the first admin, and print an admin token."""
    import panel.models  # noqa: F401
    from panel.accounts import service
    from panel.accounts.models import User
    from panel.core.migrate import upgrade
    from panel.core.validation import normalize_contact_email

    settings = _settings(data_dir)
    settings.data_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
    upgrade(settings.effective_database_url)
    db = _db(settings)
    from sqlalchemy import select  # local commands only: client commands start faster

    with db.session() as session:
        email = normalize_contact_email(admin_email)
        user = session.scalar(select(User).where(User.email == email))
        if user is None:
            user = service.create_user(session, email=email, name="Administrator", is_staff=True)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%d-%H%M%S")
        _, secret = service.create_token(
            session, None, user, name=f"init-{stamp}", scopes=["admin"], expires_at=None
        )
        session.commit()
    from panel.hosts.sshkey import ensure_key, public_key

    key = ensure_key(settings.ssh_key_path)
    typer.echo(f"data directory: {settings.data_dir}", err=True)
    typer.echo(f"panel SSH key:  {public_key(key)}", err=True)
    typer.echo("                (add it to /root/.ssh/authorized_keys on every host)", err=True)
    typer.echo(f"admin user:     {email}", err=True)
    typer.echo(f"panel URL:      {settings.public_url}", err=True)
    typer.echo(f"admin token:    {secret}", err=True)
    typer.echo(secret)


@app.command()
def serve(
    data_dir: DataDir = None,
    host: Annotated[str, typer.Option(help="Listen address")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Listen port")] = 8000,
    workers: Annotated[int, typer.Option(help="Worker processes")] = 1,
) -> None:
    """Run the API (and later the web panel) with uvicorn."""
    import uvicorn

    _settings(data_dir)
    uvicorn.run(
        "panel.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=False,
    )


@app.command()
def worker(
    data_dir: DataDir = None,
    workers: Annotated[int, typer.Option(help="Hosts reconciled in parallel")] = 4,
) -> None:
    """Run the worker: reconcile dirty hosts, retry with backoff, sweep every minute."""
    from panel.core import logs
    from panel.core.db import Database
    from panel.worker.tasks import build, run_consumer

    settings = _settings(data_dir)
    logs.setup()
    db = Database(settings.effective_database_url)
    run_consumer(build(settings, db), workers)


@app.command()
def demo(
    data_dir: DataDir = None,
    port: Annotated[int, typer.Option(help="Listen port")] = 8000,
) -> None:
    """Run the panel, a local worker and (as root) a demo web host serving a demo site."""
    from panel.cli.demo import run_demo

    settings = _settings(data_dir)
    run_demo(settings, port)


@admin_app.command("create")
def admin_create(
    email: Annotated[str, typer.Option(help="The staff user's email")],
    data_dir: DataDir = None,
    password_stdin: Annotated[bool, typer.Option(help="Read the password from stdin")] = False,
) -> None:
    """Create a staff user (asks for a password unless --password-stdin)."""
    from panel.accounts import service
    from panel.core.validation import check_password, normalize_contact_email

    settings = _settings(data_dir)
    password = sys.stdin.readline().rstrip("\n") if password_stdin else getpass.getpass()
    try:
        check_password(password)
        email = normalize_contact_email(email)
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    with _db(settings).session() as session:
        service.create_user(session, email=email, name="", password=password, is_staff=True)
        session.commit()
    typer.echo(f"staff user {email} created", err=True)


@token_app.command("create")
def token_create(
    user: Annotated[str, typer.Option(help="Email of the token's user")],
    scope: Annotated[list[str], typer.Option(help="admin, read, billing or account:<slug>")],
    name: Annotated[str, typer.Option(help="A name to recognise the token by")],
    expires_days: Annotated[int | None, typer.Option(help="Expire after N days")] = None,
    data_dir: DataDir = None,
) -> None:
    """Create a token and print it alone on stdout (it is shown only this once)."""
    import panel.models  # noqa: F401
    from panel.accounts import service
    from panel.accounts.models import User
    from panel.core.auth import check_scope
    from panel.core.errors import ProblemError

    settings = _settings(data_dir)
    try:
        scopes = [check_scope(s) for s in scope]
    except ValueError as exc:
        raise typer.BadParameter(str(exc)) from None
    expires = (dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_days)) if expires_days else None
    from sqlalchemy import select

    with _db(settings).session() as session:
        owner = session.scalar(select(User).where(User.email == user.strip().lower()))
        if owner is None:
            raise typer.BadParameter(f"no user {user}; create it first")
        try:
            _, secret = service.create_token(
                session, None, owner, name=name, scopes=scopes, expires_at=expires
            )
        except ProblemError as exc:
            typer.echo(f"error: {exc.detail}", err=True)
            raise typer.Exit(2) from None
        session.commit()
    typer.echo(secret)


@audit_app.command("purge")
def audit_purge(data_dir: DataDir = None) -> None:
    """Delete audit events older than KONBIT_AUDIT_RETENTION_DAYS."""
    from panel.audit.service import purge_expired

    settings = _settings(data_dir)
    with _db(settings).session() as session:
        count = purge_expired(session, settings.audit_retention_days)
        session.commit()
    typer.echo(
        f"purged {count} audit events older than {settings.audit_retention_days} days", err=True
    )


def main() -> None:
    app()
