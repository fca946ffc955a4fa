"""Fixtures: a real panel database (SQLite and PostgreSQL), the app, and small factories."""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import Iterator
from typing import Any

import httpx2 as httpx
import pytest
from argon2 import PasswordHasher
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, text

import panel.models  # noqa: F401
from panel.accounts import service as accounts
from panel.accounts.models import User
from panel.app import create_app
from panel.core import auth
from panel.core.db import Base, Database
from panel.core.migrate import upgrade
from panel.core.settings import Settings
from panel.mail import service as mail_service
from provisioners import sftp

PG_ENV = "KONBIT_TEST_POSTGRES_URL"
# Argon2 at its cheapest (~1 ms instead of ~150 ms a hash): the same algorithm and format,
# and hashes of either cost verify with either hasher (the parameters are in the hash).
CHEAP_ARGON2 = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def _postgres_admin_url() -> str:
    url = os.environ.get(PG_ENV)
    if not url:
        raise pytest.UsageError(
            f"{PG_ENV} is not set: run the suite with `./dev test`, which starts PostgreSQL, "
            "or point it at a PostgreSQL server you own"
        )
    return url


@pytest.fixture(autouse=True)
def cheap_password_hashes(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Password, mailbox and SFTP hashes at their cheapest cost, in this process: a fifth of
    the fast suite's time went into hashing. Tests on real hosts keep the real cost (the
    hosts' dovecot reads the hashes), and so do the CLI's subprocesses."""
    if request.node.get_closest_marker("integration") or request.node.get_closest_marker(
        "browser"
    ):
        return
    monkeypatch.setattr(auth, "_hasher", CHEAP_ARGON2)
    monkeypatch.setattr(mail_service, "_mail_hasher", CHEAP_ARGON2)
    monkeypatch.setattr(sftp, "_ROUNDS", 4)  # bcrypt's cheapest cost for SFTP passwords


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def db_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A freshly migrated panel database of each kind, for the whole session."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('db') / 'konbit.sqlite3'}"
        upgrade(url)
        yield url
        return
    with postgres_database("konbit_test") as url:
        upgrade(url)
        yield url


@contextlib.contextmanager
def postgres_database(prefix: str) -> Iterator[str]:
    """A throwaway database on the test PostgreSQL server, dropped afterwards."""
    admin_url = _postgres_admin_url()
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = create_engine(
        admin_url.replace("postgresql://", "postgresql+psycopg://", 1), isolation_level="AUTOCOMMIT"
    )
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield admin_url.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url)
    yield db
    db.engine.dispose()


@pytest.fixture
def db(database: Database) -> Iterator[Database]:
    """The session's database, emptied after each test."""
    yield database
    with database.engine.begin() as conn:
        if conn.dialect.name == "postgresql":
            # What TRUNCATE ... RESTART IDENTITY did, at a tenth of its cost on tables this
            # small (a TRUNCATE of every table took ~50 ms per test): delete the rows,
            # children first, in one round trip, then restart the tables' own sequences.
            names = [t.name for t in reversed(Base.metadata.sorted_tables)]
            conn.exec_driver_sql("; ".join(f'DELETE FROM "{name}"' for name in names))
            conn.execute(RESTART_SEQUENCES, {"names": names})
        else:
            for table in reversed(Base.metadata.sorted_tables):
                conn.execute(table.delete())


# The sequences owned by a column of the given tables, back to their start.
RESTART_SEQUENCES = text(
    "SELECT setval(s.oid::regclass, q.seqstart, false) FROM pg_class s"
    " JOIN pg_sequence q ON q.seqrelid = s.oid"
    " JOIN pg_depend d ON d.objid = s.oid AND d.classid = 'pg_class'::regclass"
    " AND d.deptype IN ('a', 'i')"
    " JOIN pg_class t ON t.oid = d.refobjid"
    " WHERE s.relkind = 'S' AND t.relname = ANY(:names)"
)


@pytest.fixture(scope="session")
def settings(database: Database, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(database_url=database.url, data_dir=tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="session")
def app(settings: Settings, database: Database) -> Any:
    return create_app(settings, database)


@pytest.fixture(scope="session")
def session_client(app: Any) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=True) as c:
        yield c


@pytest.fixture
def client(session_client: TestClient, db: Database) -> TestClient:
    """The app's client; depends on ``db`` so every test starts from empty tables."""
    return session_client


class Api:
    """Calls ``/api/v1`` as one token; returns raw responses so tests assert status codes."""

    def __init__(self, client: TestClient, token: str, user_id: int) -> None:
        self.client = client
        self.token = token
        self.user_id = user_id

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.token}", **kwargs.pop("headers", {})}
        return self.client.request(method, f"/api/v1{path}", headers=headers, **kwargs)

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("POST", path, **kw)

    def patch(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("PATCH", path, **kw)

    def delete(self, path: str, **kw: Any) -> httpx.Response:
        return self.request("DELETE", path, **kw)

    def ok(self, method: str, path: str, status: int = 200, **kw: Any) -> Any:
        r = self.request(method, path, **kw)
        assert r.status_code == status, (r.status_code, r.text)
        return r.json() if r.content else None


def host_key() -> str:
    key = Ed25519PrivateKey.generate().public_key()
    return key.public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    ).decode()


class World:
    """Factories over the API, as a sysadmin would script them."""

    def __init__(self, client: TestClient, db: Database) -> None:
        self.client = client
        self.db = db
        self.staff = self.token_for("staff@provider.test", ["admin"], staff=True)
        self._hosts = 0

    def token_for(self, email: str, scopes: list[str], staff: bool = False) -> Api:
        with self.db.session() as session:
            from sqlalchemy import select

            user = session.scalar(select(User).where(User.email == email))
            if user is None:
                user = accounts.create_user(session, email=email, is_staff=staff)
            _, secret = accounts.create_token(
                session, None, user, name="test", scopes=scopes, expires_at=None
            )
            session.commit()
            return Api(self.client, secret, user.id)

    def host(self, roles: list[str], **extra: Any) -> dict[str, Any]:
        self._hosts += 1
        body = {
            "name": f"h{self._hosts}",
            "address": f"10.99.0.{self._hosts}",
            "host_key": host_key(),
            "roles": roles,
            **extra,
        }
        return self.staff.ok("POST", "/hosts", 201, json=body)  # type: ignore[no-any-return]

    def account(self, slug: str, **quotas: int) -> dict[str, Any]:
        return self.staff.ok(
            "POST",
            "/accounts",
            201,
            json={  # type: ignore[no-any-return]
                "slug": slug,
                "name": slug.title(),
                "email": f"contact@{slug}.test",
                "quotas": quotas,
            },
        )

    def member(
        self, account: dict[str, Any], role: str = "manager", email: str | None = None
    ) -> Api:
        email = email or f"{role}@{account['slug']}.test"
        existing = self.staff.get("/users", params={"q": email}).json()["items"]
        if not existing:
            self.staff.ok("POST", "/users", 201, json={"email": email})
        self.staff.ok(
            "POST",
            f"/accounts/{account['id']}/memberships",
            201,
            json={"email": email, "role": role},
        )
        return self.token_for(email, [f"account:{account['slug']}"])

    def domain(self, account: dict[str, Any], name: str) -> dict[str, Any]:
        return self.staff.ok(
            "POST",
            "/domains",
            201,  # type: ignore[no-any-return]
            json={"account_id": account["id"], "name": name},
        )


@pytest.fixture
def world(client: TestClient, db: Database) -> World:
    return World(client, db)


@pytest.fixture
def hosted(world: World) -> World:
    """A world with one host of each role."""
    world.host(["web"])
    world.host(["mail"])
    world.host(["db"])
    world.host(["lists"])
    world.host(["toy"])  # the toy plugin's role (tests/plugins/konbit_toy)
    return world
