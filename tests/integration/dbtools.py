"""Database helpers shared by the integration tests: objects through the API, and
connections to a test host's MariaDB and PostgreSQL as a member's application makes them."""

from __future__ import annotations

from typing import Any

import psycopg
import pymysql

from panel.testhosts import TestHost
from tests.integration.conftest import Panel


def database(panel: Panel, account: dict[str, Any], name: str, engine: str) -> dict[str, Any]:
    return panel.staff.ok(  # type: ignore[no-any-return]
        "POST",
        "/databases",
        201,
        json={"account_id": account["id"], "name": name, "engine": engine},
    )


def user(
    panel: Panel, account: dict[str, Any], name: str, password: str, dbs: list[str], engine: str
) -> dict[str, Any]:
    return panel.staff.ok(  # type: ignore[no-any-return]
        "POST",
        "/database-users",
        201,
        json={
            "account_id": account["id"],
            "name": name,
            "password": password,
            "databases": dbs,
            "engine": engine,
        },
    )


def my(host: TestHost, user: str, password: str, db: str | None) -> pymysql.Connection[Any]:
    return pymysql.connect(
        host=host.address,
        port=3306,
        user=user,
        password=password,
        database=db,
        connect_timeout=5,
        autocommit=True,
    )


def pg(host: TestHost, user: str, password: str, db: str) -> psycopg.Connection[Any]:
    return psycopg.connect(
        host=host.address,
        port=5432,
        user=user,
        password=password,
        dbname=db,
        connect_timeout=5,
        autocommit=True,
    )


def sql(host: TestHost, engine: str, sql: str, db: str = "") -> str:
    """Run SQL on the host as its administrator (test set-up and checks only)."""
    if engine == "mariadb":
        argv = ["mariadb", "--batch", "--raw", "--skip-column-names", *([db] if db else [])]
    else:
        argv = ["runuser", "-u", "postgres", "--", "psql", "-X", "-A", "-t", "-q"]
        argv += ["-v", "ON_ERROR_STOP=1", "-d", db or "postgres"]
    return host.exec(argv, input=sql, check=True).stdout
