"""``konbit demo``: the panel on its embedded default, with a real demo web host.

SQLite in the data directory, a local worker process, and (as root on Linux) one demo web
host started on this machine as a test host (namespaces, its own sshd and nginx), so a
newcomer sees a real site served by a real host within a minute.
"""

from __future__ import annotations

import os
import subprocess
import sys

import typer
from sqlalchemy import select

from panel.core.settings import Settings

DEMO_MEMBER = "member@demo.test"
DEMO_HOST = "demo1"
DEMO_DOMAIN = "demo.test"
DEMO_SITE = "www.demo.test"


def _register(settings: Settings, address: str, host_key: str) -> None:
    """The demo host, account, domain and site, created once (and the host's address and key
    refreshed: they are this machine's own)."""
    import panel.models  # noqa: F401
    from panel.accounts.models import Account, User
    from panel.accounts.service import create_account
    from panel.core.auth import principal_for
    from panel.core.db import Database
    from panel.domains.models import Domain
    from panel.domains.service import create_domain
    from panel.hosts.models import Host
    from panel.hosts.service import bump_generations
    from panel.sites.models import Site
    from panel.sites.schemas import SiteCreate
    from panel.sites.service import create_site

    db = Database(settings.effective_database_url)
    with db.session() as s:
        admin = s.scalars(select(User).where(User.is_staff.is_(True)).order_by(User.id)).first()
        if admin is None:
            raise typer.BadParameter("run `konbit init` first")
        staff = principal_for(s, admin, None, frozenset({"admin"}))
        host = s.scalar(select(Host).where(Host.name == DEMO_HOST))
        if host is None:
            host = Host(
                name=DEMO_HOST,
                address=address,
                host_key=host_key,
                roles=["web"],
                settings={"web_server": "nginx", "php_versions": ["8.2"]},
            )
            s.add(host)
        host.address, host.host_key, host.enabled = address, host_key, True
        s.flush()
        account = s.scalar(select(Account).where(Account.slug == "demo"))
        if account is None:
            account = create_account(
                s,
                slug="demo",
                name="Demo coop",
                email="demo@demo.test",
                quotas={},
                defaults=settings.default_quotas,
            )
        if s.scalar(select(Domain).where(Domain.name == DEMO_DOMAIN)) is None:
            create_domain(s, staff, account.id, DEMO_DOMAIN)
        if s.scalar(select(Site).where(Site.domain == DEMO_SITE)) is None:
            create_site(
                s,
                staff,
                SiteCreate(account_id=account.id, domain=DEMO_SITE, php="8.2", host_id=host.id),
            )
        bump_generations(s, [host.id])
        s.commit()
    db.engine.dispose()


def _logins(settings: Settings) -> list[tuple[str, str]]:
    """Web panel logins for the demo: the first staff user and an owner of the demo
    account, with passwords made anew on every demo run (shown once, like tokens)."""
    import secrets as _secrets

    import panel.models  # noqa: F401  (the whole schema)
    from panel.accounts.models import Account, Membership, Role, User
    from panel.accounts.service import add_membership, create_user
    from panel.core.auth import hash_password
    from panel.core.db import Database

    out: list[tuple[str, str]] = []
    db = Database(settings.effective_database_url)
    with db.session() as s:
        admin = s.scalars(select(User).where(User.is_staff.is_(True)).order_by(User.id)).first()
        member = s.scalar(select(User).where(User.email == DEMO_MEMBER))
        if member is None:
            member = create_user(s, email=DEMO_MEMBER, name="Demo member")
        account = s.scalar(select(Account).where(Account.slug == "demo"))
        if account is not None and not s.scalar(
            select(Membership.id).where(
                Membership.account_id == account.id, Membership.user_id == member.id
            )
        ):
            add_membership(s, account.id, DEMO_MEMBER, Role.owner)
        for user in (admin, member):
            if user is not None:
                password = _secrets.token_urlsafe(12)
                user.password_hash = hash_password(password)
                out.append((user.email, password))
        s.commit()
    db.engine.dispose()
    return out


def run_demo(settings: Settings, port: int) -> None:
    from panel.hosts.sshkey import ensure_key, public_key

    env = {**os.environ, "KONBIT_DATA_DIR": str(settings.data_dir)}
    worker = subprocess.Popen(
        [sys.executable, "-m", "panel.cli", "worker"],
        env=env,
        stdout=open(settings.data_dir / "worker.log", "ab"),  # noqa: SIM115
        stderr=subprocess.STDOUT,
    )
    lab = None
    try:
        if os.geteuid() == 0 and sys.platform == "linux":
            from panel.testhosts import Lab

            typer.echo(
                "starting the demo web host (the first run builds a Debian base "
                "image: about two minutes)...",
                err=True,
            )
            lab = Lab(bridge="kbdemo0", subnet="10.77.90", veth_prefix="kd-")
            lab.ensure_base()
            key = public_key(ensure_key(settings.ssh_key_path))
            host = lab.start(DEMO_HOST, roles=["web"], authorized_keys=[key])
            host.wait_ready(90)
            _register(settings, host.address, host.host_key)
            for email, password in _logins(settings):
                typer.echo(
                    f"web panel login: {settings.public_url}/login  {email} / {password}",
                    err=True,
                )
            typer.echo(
                f"demo web host {DEMO_HOST} at {host.address}; once the worker has "
                f"applied it (a few seconds):\n"
                f"  curl -H 'Host: {DEMO_SITE}' http://{host.address}/",
                err=True,
            )
        else:
            typer.echo("not root on Linux: no demo web host (the panel runs without one)", err=True)
        typer.echo(f"worker log: {settings.data_dir / 'worker.log'}", err=True)
        import uvicorn

        uvicorn.run(
            "panel.app:create_app", factory=True, host="127.0.0.1", port=port, log_level="warning"
        )
    finally:
        worker.terminate()
        try:
            worker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            worker.kill()
        if lab is not None:
            lab.close()
