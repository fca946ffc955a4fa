"""The database plugins' statements, from a desired state and a host's facts alone."""

from __future__ import annotations

from panel.databases.secrets import mysql_native_hash, scram_sha256_verifier
from provisioners.api import (
    AccountView,
    DatabaseUserView,
    DatabaseView,
    DesiredState,
    Facts,
    HostView,
    Step,
)
from provisioners.databases import (
    PER_OBJECT_STEPS,
    MariaDB,
    PostgreSQL,
    mysql_grant_db,
    mysql_ident,
    pg_ident,
    pg_str,
)

ACME = AccountView(1, "acme", "active")
HOST = HostView(1, "db1", ("db",), {})
MY_HASH = mysql_native_hash("pass word 1")
PG_HASH = scram_sha256_verifier("pass word 1", salt=b"0123456789abcdef")


def _state(engine: str, dbs: list[str], users: dict[str, list[str]]) -> DesiredState:
    verifier = MY_HASH if engine == "mariadb" else PG_HASH
    return DesiredState(
        host=HOST,
        databases=tuple(DatabaseView(i + 1, 1, ACME, engine, n, False) for i, n in enumerate(dbs)),
        database_users=tuple(
            DatabaseUserView(i + 1, 1, ACME, engine, n, verifier, tuple(g), False)
            for i, (n, g) in enumerate(users.items())
        ),
    )


_ENGINES = {"mariadb": MariaDB, "postgresql": PostgreSQL}


def _facts(name: str, text: str) -> Facts:
    return Facts.of({_ENGINES[name].fact: text})


def _sql(steps: list[Step] | tuple[Step, ...]) -> str:
    return "".join((s.stdin or b"").decode() for s in steps)


def test_quoting_and_grant_wildcards() -> None:
    assert mysql_grant_db("acme_shop") == "acme\\_shop"
    assert mysql_grant_db("a%b") == "a\\%b"
    assert mysql_ident("a`b") == "`a``b`"
    assert pg_ident('a"b') == '"a""b"'
    assert pg_str("it's") == "'it''s'"


def test_mariadb_host_in_sync_needs_nothing() -> None:
    facts = _facts(
        "mariadb",
        "D\tacme_shop\t16384\t\n"
        f"U\tacme_web\tmysql_native_password:{MY_HASH}\t\n"
        "G\tacme_web\tacme\\\\_shop\tYYYYYYYYYYYYYYYYYY\nOK\n",
    )
    state = _state("mariadb", ["acme_shop"], {"acme_web": ["acme_shop"]})
    assert MariaDB().steps(state, facts, set()) == []
    assert MariaDB().state_of(facts).sizes == {"acme_shop": 16384}


def test_mariadb_statements_go_on_stdin_and_grants_are_escaped() -> None:
    state = _state("mariadb", ["acme_shop"], {"acme_web": ["acme_shop"]})
    # A wildcard grant made by hand, and an unrecorded one, are taken back.
    facts = _facts("mariadb", "G\tacme_web\tacme_shop\tYYYY\nG\tacme_web\tother\tYYYY\nOK\n")
    steps = list(MariaDB().steps(state, facts, set()))
    sql = _sql(steps)
    assert "CREATE DATABASE IF NOT EXISTS `acme_shop`" in sql
    assert f"CREATE USER IF NOT EXISTS 'acme_web'@'%' IDENTIFIED BY PASSWORD '{MY_HASH}'" in sql
    assert "GRANT ALL PRIVILEGES ON `acme\\_shop`.* TO 'acme_web'@'%';" in sql
    assert "REVOKE ALL PRIVILEGES ON `acme_shop`.* FROM 'acme_web'@'%';" in sql
    assert "REVOKE ALL PRIVILEGES ON `other`.* FROM 'acme_web'@'%';" in sql
    for step in steps:
        assert MY_HASH not in " ".join(step.argv)
        assert not any("GRANT" in a or "CREATE" in a for a in step.argv)


def test_postgresql_user_is_a_member_of_the_database_owner_role() -> None:
    state = _state("postgresql", ["acme_shop"], {"acme_web": ["acme_shop"]})
    facts = _facts(
        "postgresql", "B\t/usr/lib/postgresql/15/bin\nG\tacme_web\tpg_read_all_data\nOK\n"
    )
    steps = list(PostgreSQL().steps(state, facts, set()))
    sql = _sql(steps)
    assert 'CREATE DATABASE "acme_shop" OWNER "ACME_SHOP"' in sql
    assert 'REVOKE ALL ON DATABASE "acme_shop" FROM PUBLIC;' in sql
    assert 'GRANT "ACME_SHOP" TO "acme_web";' in sql
    assert 'REVOKE "pg_read_all_data" FROM "acme_web";' in sql
    assert f"PASSWORD '{PG_HASH}'" in sql
    assert all(PG_HASH not in " ".join(s.argv) for s in steps)
    assert steps[0].argv[4] == "/usr/lib/postgresql/15/bin/psql"


def test_hostile_names_are_refused_before_any_statement() -> None:
    evil = "acme_x`; DROP DATABASE mysql; --"
    for plugin, engine in ((MariaDB(), "mariadb"), (PostgreSQL(), "postgresql")):
        state = _state(engine, [evil], {"acme_y'; DROP ROLE postgres; --": [evil]})
        steps = list(plugin.steps(state, _facts(plugin.name, "OK\n"), set()))
        assert len(steps) == 2
        assert all(s.stdin is None and s.argv[:2] == ("sh", "-c") for s in steps)
        assert {s.object_ids for s in steps} == {(("database", 1),), (("database_user", 1),)}
        assert "DROP" not in _sql(steps)


def test_an_unreadable_engine_fails_the_host_not_its_objects() -> None:
    state = _state("mariadb", ["acme_shop"], {})
    steps = list(MariaDB().steps(state, _facts("mariadb", "ERR\tcannot connect\n"), set()))
    assert len(steps) == 1 and steps[0].object_ids == () and "cannot connect" in steps[0].argv[-1]
    # With nothing of that engine to carry, an engine that is not there is no failure.
    assert MariaDB().steps(_state("mariadb", [], {}), _facts("mariadb", ""), set()) == []


def test_many_objects_are_batched_few_are_one_step_each() -> None:
    few = _state("mariadb", [f"acme_d{i}" for i in range(3)], {})
    assert len(MariaDB().steps(few, _facts("mariadb", "OK\n"), set())) == 3
    many = _state("mariadb", [f"acme_d{i}" for i in range(PER_OBJECT_STEPS * 20)], {})
    steps = MariaDB().steps(many, _facts("mariadb", "OK\n"), set())
    assert len(steps) == 2 and len(steps[0].object_ids) == 200


def test_deleting_a_database_archives_before_it_drops() -> None:
    state = DesiredState(
        host=HOST, databases=(DatabaseView(7, 2, ACME, "mariadb", "acme_old", True),)
    )
    steps = list(MariaDB().steps(state, _facts("mariadb", "D\tacme_old\t0\t\nOK\n"), set()))
    assert [s.description for s in steps] == [
        "archive mariadb database acme_old",
        "drop mariadb database acme_old",
    ]
    assert "/var/lib/konbit/archive/databases/acme" in steps[0].argv
    # Already gone from the host: nothing to do (the panel row goes when it settles).
    assert MariaDB().steps(state, _facts("mariadb", "OK\n"), set()) == []
