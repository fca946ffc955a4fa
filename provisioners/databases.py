"""Database hosts: MariaDB and PostgreSQL databases, users and grants, driven over SSH.

Each engine is driven through its own client run as the host's administrator (``mariadb``
as root over the unix socket, ``psql`` as ``postgres`` by peer authentication): the panel
never connects to a database port.  One query per engine reads what the host has
(databases with their sizes, users with their password verifiers, grants); the plugin then
emits only the statements still needed, as steps whose SQL travels on stdin (never argv:
argv shows in ``ps``, and a verifier is a secret).

Names reach this module already checked at the API boundary (``<slug>_<suffix>``, lower
case letters, digits and ``_``); they are checked again here before any statement is
built, and quoted by each engine's rules all the same.  In MariaDB grants ``_`` and ``%``
are wildcards, so database names are escaped there: a user of ``acme_shop`` gets nothing
on ``acmeXshop``.

PostgreSQL model: each database is owned by a NOLOGIN role named after it in upper case
(``"ACME_SHOP"``: user names are lower case, so it can never collide with one), PUBLIC
has no privilege on it, and a user granted the database is a member of that role, with
``role`` set to it for sessions in that database so that every user of a database shares
its tables.  Revoking the membership revokes everything.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

from pydantic import BaseModel, Field

from provisioners.api import (
    LIVE,
    DatabaseUserView,
    DatabaseView,
    DesiredState,
    Fact,
    Facts,
    Failure,
    HostView,
    ManagedFile,
    Metric,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Sample,
    Step,
)

ARCHIVE_DIR = "/var/lib/konbit/archive/databases"
Engine = Literal["mariadb", "postgresql"]
ENGINES: tuple[Engine, ...] = ("mariadb", "postgresql")

# Defence in depth: what the API lets through, re-checked before a statement is built.
NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")
MYSQL_HASH_RE = re.compile(r"\*[0-9A-F]{40}")
_B64 = r"[A-Za-z0-9+/]+={0,2}"
SCRAM_RE = re.compile(rf"SCRAM-SHA-256\$[0-9]{{1,7}}:{_B64}\${_B64}:{_B64}")

# A first apply of 1,000 databases must not start 2,000 client processes; a handful of
# objects keep one step each, so a failure blames exactly the object it belongs to.
PER_OBJECT_STEPS = 20
CHUNK = 200


class DbSettings(BaseModel):
    """A db host's settings: the engines it runs."""

    engines: list[Engine] = Field(default_factory=lambda: list(ENGINES))


def serves(host: HostView, engine: str) -> bool:
    """Whether a db host runs this engine (host setting ``engines``, both by default)."""
    return "db" in host.roles and engine in host.settings_as(DbSettings).engines


def mysql_ident(name: str) -> str:
    """MariaDB identifier: backticks, a backtick doubled."""
    return "`" + name.replace("`", "``") + "`"


def mysql_str(value: str) -> str:
    """MariaDB string literal (backslash escapes are on by default)."""
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def mysql_grant_db(name: str) -> str:
    """A database name as GRANT and ``mysql.db`` read it: ``_`` and ``%`` are wildcards."""
    return name.replace("\\", "\\\\").replace("_", "\\_").replace("%", "\\%")


def mysql_account(user: str) -> str:
    return f"{mysql_str(user)}@'%'"


def pg_ident(name: str) -> str:
    """PostgreSQL identifier: double quotes, a double quote doubled."""
    return '"' + name.replace('"', '""') + '"'


def pg_str(value: str) -> str:
    """PostgreSQL string literal (standard_conforming_strings: only ``'`` is special)."""
    return "'" + value.replace("'", "''") + "'"


def pg_owner(database: str) -> str:
    """The NOLOGIN role that owns a database (upper case: never a user's name)."""
    return database.upper()


@dataclass
class HostDatabases:
    """One engine's state on the host, parsed from its fact query."""

    ok: bool = False
    error: str = ""
    sizes: dict[str, int] = field(default_factory=dict)  # database -> bytes
    owners: dict[str, str] = field(default_factory=dict)  # database -> owner (postgresql)
    public: set[str] = field(default_factory=set)  # databases PUBLIC may use (postgresql)
    users: dict[str, str] = field(default_factory=dict)  # user -> verifier as stored
    grants: dict[str, dict[str, bool]] = field(default_factory=dict)  # user -> {db: full}
    roles: set[str] = field(default_factory=set)  # NOLOGIN roles (postgresql)
    settings: dict[str, set[str]] = field(default_factory=dict)  # user -> dbs with role set
    bin: str = ""  # PostgreSQL's binaries (pg_wrapper, a perl script, costs 40 ms a call)
    include_ok: bool = True  # every cluster includes Konbit's settings (postgresql)


_BATCH_ESCAPES = {"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}


def _unbatch(value: str) -> str:
    """Undo ``mariadb --batch`` escaping (``\\_`` in ``mysql.db`` comes out doubled)."""
    return re.sub(r"\\(.)", lambda m: _BATCH_ESCAPES.get(m.group(1), m.group(1)), value)


def parse_facts(text: str, batch_escaped: bool = False) -> HostDatabases:
    """Tab-separated lines, a tag first; ``OK`` last when the query answered."""
    out = HostDatabases()
    for line in text.splitlines():
        tag, _, rest = line.partition("\t")
        f = [_unbatch(v) for v in rest.split("\t")] if batch_escaped else rest.split("\t")
        if tag == "OK":
            out.ok = True
        elif tag == "ERR":
            out.error = rest.strip() or "no answer"
        elif tag == "D" and len(f) >= 2:
            out.sizes[f[0]] = int(f[1]) if f[1].isdigit() else 0
            if len(f) >= 4:
                out.owners[f[0]] = f[2]
                if f[3] == "t":
                    out.public.add(f[0])
        elif tag == "U" and len(f) >= 2:
            out.users[f[0]] = f[1]
        elif tag == "G" and len(f) >= 2:
            out.grants.setdefault(f[0], {})[f[1]] = len(f) < 3 or "N" not in f[2]
        elif tag == "R" and f:
            out.roles.add(f[0])
        elif tag == "S" and len(f) >= 3:
            if f"role={pg_owner(f[1])}" in f[2].split(","):
                out.settings.setdefault(f[0], set()).add(f[1])
        elif tag == "B" and f:
            out.bin = f[0]
        elif tag == "C" and len(f) >= 2 and f[1] != "ok":
            out.include_ok = False
    if out.ok and not out.error:
        return out
    out.ok = False
    out.error = out.error or "the engine gave no answer"
    return out


@dataclass
class _Sql:
    """Statements for one object; consecutive ones are batched into steps."""

    ref: ObjectRef
    description: str
    sql: str


_Item = _Sql | Step

# Dumps a database into a gzip archive; exits non-zero (and leaves no archive) unless the
# whole dump made it, so the DROP that follows in the same batch never runs after a
# failed dump.  dash has no pipefail: the dump's status comes back on fd 3.
_ARCHIVE = r"""
set -eu
engine="$1"; name="$2"; dir="$3"; bin="$4"
umask 077
install -d -m 0700 /var/lib/konbit/archive "$(dirname "$dir")" "$dir"
dest="$dir/$name-$engine-$(date -u +%Y%m%dT%H%M%SZ).sql.gz"
tmp="$dest.partial"
cd /
status=$( { {
    if [ "$engine" = mariadb ]; then
        mariadb-dump --single-transaction --routines --events --triggers --hex-blob -- "$name"
    else
        runuser -u postgres -- "$bin/pg_dump" --no-owner --no-privileges --dbname="$name"
    fi
    echo $? >&3
} | gzip -c > "$tmp"; } 3>&1 )
if [ "$status" != 0 ] || ! gzip -t "$tmp"; then
    rm -f "$tmp"
    echo "dump of $engine database $name failed (exit $status); not dropped" >&2
    exit 1
fi
mv -f "$tmp" "$dest"
"""

_FAIL = 'printf "%s\\n" "$1" >&2; exit 1'


def _failing(description: str, message: str, refs: Iterable[ObjectRef] = ()) -> Step:
    """A step that fails with a message: how a plugin reports a problem it found.  In the
    "after" phase, so a configuration fix still goes live before it."""
    return Step(
        description,
        ("sh", "-c", _FAIL, "konbit", message),
        phase="after",
        object_ids=tuple(refs),
    )


class _DatabaseEngine(Provisioner):
    """What both engines share: diffing desired against host, batching, archiving."""

    roles = ("db",)
    settings = DbSettings
    kinds = (
        ObjectKind("database", "db", title="database"),
        ObjectKind("database_user", "db", title="database user"),
    )
    metrics = (Metric("db_bytes", "databases", storage_of="database"),)
    engine: str
    # The one query this engine's state is read with (the reconcile's and usage's).
    fact: ClassVar[Fact[HostDatabases]]

    def applies_to(self, host: HostView) -> bool:
        return serves(host, self.engine)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return []

    def client(self, host: HostDatabases) -> tuple[str, ...]:
        raise NotImplementedError

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        raise NotImplementedError

    def extra_steps(self, host: HostDatabases, changed: set[str]) -> list[Step]:
        return []

    def parse(self, text: str) -> HostDatabases:
        return self.fact.parse(text)

    def state_of(self, facts: Facts) -> HostDatabases:
        return facts[self.fact]

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        """Sizes come with the same one query the reconcile reads its state with."""
        if not any(d.engine == self.engine for d in state.databases):
            return None
        return self.fact.script

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        host = self.parse(output)
        if not host.ok:
            raise Failure(f"{self.engine} did not answer its size query: {host.error}")
        samples = [
            Sample(("database", d.id), "db_bytes", host.sizes[d.name])
            for d in state.databases
            if d.engine == self.engine and not d.deleting and d.name in host.sizes
        ]
        return samples, dict(cursor)

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Only the statements the host still needs, in an order that always works:
        databases, users and their grants, dropped users, then archived-and-dropped
        databases."""
        dbs = [d for d in state.databases if d.engine == self.engine]
        users = [u for u in state.database_users if u.engine == self.engine]
        host = self.state_of(facts)
        if not host.ok:
            if not dbs and not users:
                return []
            # Not any object's fault: the host fails as a whole and is retried.
            return [
                _failing(
                    f"read {self.engine} state",
                    f"{self.engine} did not answer its state query: {host.error[:500]}",
                )
            ]
        bad: list[Step] = []
        objects: list[DatabaseView | DatabaseUserView] = [*dbs, *users]
        for obj in objects:
            problem = self._check(obj)
            if problem:
                kind = "database" if isinstance(obj, DatabaseView) else "database_user"
                bad.append(_failing(f"check {obj.name!r}", problem, [(kind, obj.id)]))
        bad_ids = {s.object_ids[0] for s in bad}
        dbs = [d for d in dbs if ("database", d.id) not in bad_ids]
        users = [u for u in users if ("database_user", u.id) not in bad_ids]
        clean = DesiredState(
            host=state.host, databases=tuple(dbs), database_users=tuple(users), failed=state.failed
        )
        items = self.plan_sql(clean, host)
        return [*self.extra_steps(host, changed), *bad, *self._batch(items, host)]

    @staticmethod
    def grantable(state: DesiredState, host: HostDatabases) -> set[str]:
        """Databases a user may be granted now: those the panel keeps or the host has,
        except a database whose creation failed and that the host does not have."""
        usable = {d.name for d in state.databases if not d.deleting} | set(host.sizes)
        failed = {d.name for d in state.databases if ("database", d.id) in state.failed}
        return usable - (failed - set(host.sizes))

    def _check(self, obj: DatabaseView | DatabaseUserView) -> str | None:
        if not NAME_RE.fullmatch(obj.name):
            return f"refused: {obj.name!r} is not a valid {self.engine} name"
        if isinstance(obj, DatabaseUserView):
            if not all(NAME_RE.fullmatch(d) for d in obj.databases):
                return f"refused: {obj.name} is granted a database with an invalid name"
            pattern = MYSQL_HASH_RE if self.engine == "mariadb" else SCRAM_RE
            if not obj.deleting and not pattern.fullmatch(obj.password_hash):
                return f"refused: the stored password verifier of {obj.name} is not {self.engine}'s"
        return None

    def _batch(self, items: list[_Item], host: HostDatabases) -> list[Step]:
        """Consecutive statements: one step per object when few, else chunks (a failing
        chunk blames every object in it)."""
        steps: list[Step] = []
        run: list[_Sql] = []

        def flush() -> None:
            if not run:
                return
            per_object = len(run) <= PER_OBJECT_STEPS
            size = 1 if per_object else CHUNK
            for i in range(0, len(run), size):
                part = run[i : i + size]
                what = part[0].description if per_object else f"{len(part)} {self.engine} changes"
                steps.append(
                    Step(
                        what,
                        self.client(host),
                        phase="after",
                        object_ids=tuple(dict.fromkeys(p.ref for p in part)),
                        stdin="".join(p.sql for p in part).encode(),
                    )
                )
            run.clear()

        for item in items:
            if isinstance(item, _Sql):
                run.append(item)
            else:
                flush()
                steps.append(item)
        flush()
        return steps

    def archive(self, db: DatabaseView, host: HostDatabases) -> Step:
        return Step(
            f"archive {self.engine} database {db.name}",
            (
                "sh",
                "-c",
                _ARCHIVE,
                "konbit",
                self.engine,
                db.name,
                f"{ARCHIVE_DIR}/{db.account.slug}",
                host.bin or "/usr/bin",
            ),
            phase="after",
            object_ids=(("database", db.id),),
        )


# -- MariaDB ------------------------------------------------------------------------------

_MARIADB_FACTS = r"""
if out=$(mariadb --batch --skip-column-names 2>&1 <<'SQL'
SELECT 'D', s.schema_name, IFNULL(SUM(t.data_length + t.index_length), 0), ''
  FROM information_schema.schemata s
  LEFT JOIN information_schema.tables t ON t.table_schema = s.schema_name
  GROUP BY s.schema_name
UNION ALL
SELECT 'U', User, CONCAT(plugin, ':', authentication_string), '' FROM mysql.user
  WHERE Host = '%'
UNION ALL
SELECT 'G', User, Db, CONCAT(Select_priv, Insert_priv, Update_priv, Delete_priv,
  Create_priv, Drop_priv, References_priv, Index_priv, Alter_priv, Create_tmp_table_priv,
  Lock_tables_priv, Create_view_priv, Show_view_priv, Create_routine_priv,
  Alter_routine_priv, Execute_priv, Event_priv, Trigger_priv)
  FROM mysql.db WHERE Host = '%';
SQL
); then
    printf '%s\nOK\n' "$out"
else
    printf 'ERR\t%s\n' "$(printf '%s' "$out" | tr '\t\n' '  ' | cut -c1-600)"
fi
"""

MARIADB_INCLUDE = b"# Managed by Konbit.\n!includedir /etc/konbit/live/mariadb/\n"
MARIADB_CONF = b"""\
# Managed by Konbit: members' sites on other hosts connect over TCP, as users
# 'name'@'%' with mysql_native_password; root stays on the unix socket.
[mysqld]
bind-address = 0.0.0.0
skip-name-resolve
"""


class MariaDB(_DatabaseEngine):
    """Databases ``CHARACTER SET utf8mb4``, users ``'name'@'%'``, grants per database."""

    name = "mariadb"
    # MariaDB's output comes ``--batch`` escaped.
    fact = Fact("mariadb", _MARIADB_FACTS, lambda text: parse_facts(text, batch_escaped=True))
    facts = (fact,)
    engine = "mariadb"

    def operations(self) -> object:
        """Dumps, loads, archives, locks and drops for the panel's tasks."""
        from provisioners.database_operations import MariaDBOperations  # it imports this module

        return MariaDBOperations()

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        return [("/etc/mysql/mariadb.conf.d/90-konbit.cnf", MARIADB_INCLUDE)]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return [ManagedFile("mariadb/konbit.cnf", MARIADB_CONF)]

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        # The server's own option parser: an unknown option fails here, not at restart.
        return [["sh", "-c", "mariadbd --help --verbose >/dev/null"]]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if "mariadb/konbit.cnf" in changed:
            return [["systemctl", "restart", "mariadb"]]
        return []

    def client(self, host: HostDatabases) -> tuple[str, ...]:
        return ("mariadb", "--batch")

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        items: list[_Item] = []
        for db in state.databases:
            if not db.deleting and db.name not in host.sizes:
                items.append(
                    _Sql(
                        ("database", db.id),
                        f"create mariadb database {db.name}",
                        f"CREATE DATABASE IF NOT EXISTS {mysql_ident(db.name)} "
                        "CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci;\n",
                    )
                )
        grantable = self.grantable(state, host)
        for user in state.database_users:
            if user.deleting:
                continue
            account = mysql_account(user.name)
            sql: list[str] = []
            hashed = mysql_str(user.password_hash)
            current = host.users.get(user.name)
            if current is None:
                sql.append(f"CREATE USER IF NOT EXISTS {account} IDENTIFIED BY PASSWORD {hashed};")
            if current != f"mysql_native_password:{user.password_hash}":
                sql.append(f"ALTER USER {account} IDENTIFIED BY PASSWORD {hashed};")
            held = host.grants.get(user.name, {})
            wanted = {mysql_grant_db(d) for d in user.databases if d in grantable}
            for pattern in sorted(wanted):
                if not held.get(pattern, False):
                    sql.append(f"GRANT ALL PRIVILEGES ON {mysql_ident(pattern)}.* TO {account};")
            for pattern in sorted(set(held) - set(wanted)):
                # The pattern exactly as the host stores it (a hand-made wildcard included).
                sql.append(f"REVOKE ALL PRIVILEGES ON {mysql_ident(pattern)}.* FROM {account};")
            if sql:
                verb = "create" if current is None else "update"
                items.append(
                    _Sql(
                        ("database_user", user.id),
                        f"{verb} mariadb user {user.name}",
                        "\n".join(sql) + "\n",
                    )
                )
        for user in state.database_users:
            if user.deleting and user.name in host.users:
                items.append(
                    _Sql(
                        ("database_user", user.id),
                        f"drop mariadb user {user.name}",
                        f"DROP USER IF EXISTS {mysql_account(user.name)};\n",
                    )
                )
        for db in state.databases:
            if db.deleting and db.name in host.sizes:
                items.append(self.archive(db, host))
                items.append(
                    _Sql(
                        ("database", db.id),
                        f"drop mariadb database {db.name}",
                        f"DROP DATABASE IF EXISTS {mysql_ident(db.name)};\n",
                    )
                )
        return items


# -- PostgreSQL ---------------------------------------------------------------------------

PG_INCLUDE = (
    "# Managed by Konbit: the settings Konbit needs live in its tree.\n"
    f"include_if_exists = '{LIVE}/postgresql/konbit.conf'"
)

_PG_FACTS = r"""
include=$(cat <<'CONF'
@INCLUDE@
CONF
)
bin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)
printf 'B\t%s\n' "$bin"
for d in /etc/postgresql/*/*/conf.d; do
    [ -d "$d" ] || continue
    if [ "$(cat "$d/90-konbit.conf" 2>/dev/null)" = "$include" ]; then
        printf 'C\t%s\tok\n' "$d"
    else
        printf 'C\t%s\tmissing\n' "$d"
    fi
done
tab=$(printf '\t')
if out=$(cd / && runuser -u postgres -- "$bin/psql" -X -q -A -t -F "$tab" \
        -v ON_ERROR_STOP=1 -d postgres 2>&1 <<'SQL'
SELECT 'D', d.datname, pg_database_size(d.oid)::text, pg_get_userbyid(d.datdba)::text,
    EXISTS (SELECT 1 FROM aclexplode(coalesce(d.datacl, acldefault('d', d.datdba))) a
            WHERE a.grantee = 0)
  FROM pg_database d WHERE d.datallowconn AND NOT d.datistemplate
UNION ALL
SELECT 'U', rolname, coalesce(rolpassword, ''), '', false FROM pg_authid WHERE rolcanlogin
UNION ALL
SELECT 'R', rolname, '', '', false FROM pg_roles WHERE NOT rolcanlogin
UNION ALL
SELECT 'G', m.rolname, r.rolname, '', false
  FROM pg_auth_members a
  JOIN pg_roles r ON r.oid = a.roleid
  JOIN pg_roles m ON m.oid = a.member
  WHERE m.rolcanlogin
UNION ALL
SELECT 'S', r.rolname, d.datname, array_to_string(s.setconfig, ','), false
  FROM pg_db_role_setting s
  JOIN pg_roles r ON r.oid = s.setrole
  JOIN pg_database d ON d.oid = s.setdatabase;
SQL
); then
    printf '%s\nOK\n' "$out"
else
    printf 'ERR\t%s\n' "$(printf '%s' "$out" | tr '\t\n' '  ' | cut -c1-600)"
fi
""".replace("@INCLUDE@", PG_INCLUDE)

PG_CONF = f"""\
# Managed by Konbit: members' sites on other hosts connect over TCP with SCRAM-SHA-256.
listen_addresses = '*'
password_encryption = 'scram-sha-256'
hba_file = '{LIVE}/postgresql/pg_hba.conf'
""".encode()

PG_HBA = b"""\
# Managed by Konbit.  TYPE DATABASE USER ADDRESS METHOD
local   all             postgres                                peer
local   all             all                                     peer
# The administrator and the maintenance databases are never reachable over the network;
# a member's user reaches only the databases it is granted (CONNECT is not PUBLIC's).
host    all             postgres        all                     reject
host    postgres,template0,template1 all all                    reject
host    all             all             all                     scram-sha-256
"""

# Writes the include line into every cluster's conf.d and restarts only if it changed.
_PG_INCLUDE_STEP = r"""
set -eu
restart=""
for d in /etc/postgresql/*/*/conf.d; do
    [ -d "$d" ] || continue
    f="$d/90-konbit.conf"
    if [ "$(cat "$f" 2>/dev/null || true)" != "$1" ]; then
        printf '%s\n' "$1" > "$f.konbit-new"
        mv -f "$f.konbit-new" "$f"
        restart=1
    fi
done
if [ -n "$restart" ]; then
    # The server must inherit none of this session's descriptors (the engine's step
    # script keeps its stdout as fd 3): the SSH channel would stay open while it runs.
    log=$(mktemp)
    systemctl restart postgresql </dev/null >"$log" 2>&1 3>&- \
        || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
fi
"""

# Restart or reload only once the clusters read Konbit's settings (the step above
# restarts them the first time).
_PG_RELOAD = r"""
for f in /etc/postgresql/*/*/conf.d/90-konbit.conf; do
    [ -e "$f" ] || continue
    log=$(mktemp)
    systemctl "$1" postgresql </dev/null >"$log" 2>&1 3>&- \
        || { cat "$log" >&2; rm -f "$log"; exit 1; }
    rm -f "$log"
    exit 0
done
"""


def _pg_if_absent(statement: str, catalog: str, column: str, name: str) -> str:
    """psql's ``\\gexec``: a statement that has no IF NOT EXISTS, run only when needed."""
    return (
        f"SELECT {pg_str(statement)} WHERE NOT EXISTS "  # noqa: S608 - all quoted by pg_str
        f"(SELECT 1 FROM {catalog} WHERE {column} = {pg_str(name)})\\gexec\n"
    )


class PostgreSQL(_DatabaseEngine):
    """Databases owned by a NOLOGIN role per database; users are its members."""

    name = "postgresql"
    fact = Fact("postgresql", _PG_FACTS, parse_facts)
    facts = (fact,)
    engine = "postgresql"

    def operations(self) -> object:
        """Dumps, loads, archives, locks and drops for the panel's tasks."""
        from provisioners.database_operations import PostgreSQLOperations  # it imports this module

        return PostgreSQLOperations()

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return [
            ManagedFile("postgresql/konbit.conf", PG_CONF),
            ManagedFile("postgresql/pg_hba.conf", PG_HBA),
        ]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if "postgresql/konbit.conf" in changed:
            return [["sh", "-c", _PG_RELOAD, "konbit", "restart"]]
        if "postgresql/pg_hba.conf" in changed:
            return [["sh", "-c", _PG_RELOAD, "konbit", "reload"]]
        return []

    def client(self, host: HostDatabases) -> tuple[str, ...]:
        psql = f"{host.bin}/psql" if host.bin else "psql"
        return (
            "runuser", "-u", "postgres", "--",
            psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "postgres",
        )  # fmt: skip

    def extra_steps(self, host: HostDatabases, changed: set[str]) -> list[Step]:
        if host.include_ok:
            return []
        return [
            Step(
                "postgresql reads Konbit's settings",
                ("sh", "-c", _PG_INCLUDE_STEP, "konbit", PG_INCLUDE),
                phase="after",
            )
        ]

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        return [
            *self._databases(state, host),
            *self._users(state, host),
            *self._dropped_users(state, host),
            *self._dropped_databases(state, host),
        ]

    def _databases(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        items: list[_Item] = []
        for db in state.databases:
            if db.deleting:
                continue
            owner = pg_owner(db.name)
            sql: list[str] = []
            if owner not in host.roles:
                sql.append(_pg_if_absent(f"CREATE ROLE {pg_ident(owner)} NOLOGIN", "pg_roles",
                                         "rolname", owner))  # fmt: skip
            if db.name not in host.sizes:
                sql.append(
                    _pg_if_absent(
                        f"CREATE DATABASE {pg_ident(db.name)} OWNER {pg_ident(owner)} "
                        "TEMPLATE template0 ENCODING 'UTF8'",
                        "pg_database",
                        "datname",
                        db.name,
                    )
                )
            elif host.owners.get(db.name) != owner:
                sql.append(f"ALTER DATABASE {pg_ident(db.name)} OWNER TO {pg_ident(owner)};\n")
            if db.name not in host.sizes or db.name in host.public:
                sql.append(f"REVOKE ALL ON DATABASE {pg_ident(db.name)} FROM PUBLIC;\n")
            if sql:
                verb = "create" if db.name not in host.sizes else "repair"
                items.append(
                    _Sql(("database", db.id), f"{verb} postgresql database {db.name}", "".join(sql))
                )
        return items

    def _users(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        items: list[_Item] = []
        grantable = self.grantable(state, host)
        for user in state.database_users:
            if user.deleting:
                continue
            role = pg_ident(user.name)
            sql = []
            current = host.users.get(user.name)
            if current is None:
                sql.append(_pg_if_absent(f"CREATE ROLE {role} LOGIN", "pg_roles", "rolname",
                                         user.name))  # fmt: skip
            if current != user.password_hash:
                sql.append(f"ALTER ROLE {role} LOGIN PASSWORD {pg_str(user.password_hash)};\n")
            wanted = {d for d in user.databases if d in grantable}
            held = set(host.grants.get(user.name, {}))
            with_role = host.settings.get(user.name, set())
            for d in sorted(wanted):
                owner = pg_owner(d)
                if owner not in held:
                    sql.append(f"GRANT {pg_ident(owner)} TO {role};\n")
                if d not in with_role:
                    sql.append(
                        f"ALTER ROLE {role} IN DATABASE {pg_ident(d)} SET role = {pg_str(owner)};\n"
                    )
            for granted in sorted(held - {pg_owner(d) for d in wanted}):
                # Every membership the panel did not record goes (pg_read_all_data too).
                sql.append(f"REVOKE {pg_ident(granted)} FROM {role};\n")
            for d in sorted(with_role - wanted):
                if d in host.sizes:
                    sql.append(f"ALTER ROLE {role} IN DATABASE {pg_ident(d)} RESET role;\n")
            if sql:
                verb = "create" if current is None else "update"
                items.append(
                    _Sql(
                        ("database_user", user.id),
                        f"{verb} postgresql user {user.name}",
                        "".join(sql),
                    )
                )
        return items

    def _dropped_users(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        items: list[_Item] = []
        live = {d.name for d in state.databases if not d.deleting}
        for user in state.database_users:
            if not (user.deleting and user.name in host.users):
                continue
            role = pg_ident(user.name)
            sql = []
            # Whatever it still owns inside a database goes to that database's owner.
            for granted in sorted(host.grants.get(user.name, {})):
                d = granted.lower()
                if pg_owner(d) == granted and d in live and d in host.sizes:
                    sql.append(
                        f"\\connect {pg_ident(d)}\n"
                        f"REASSIGN OWNED BY {role} TO {pg_ident(granted)};\n"
                        f"DROP OWNED BY {role};\n"
                    )
            if sql:
                sql.append("\\connect postgres\n")
            sql.append(f"DROP ROLE IF EXISTS {role};\n")
            items.append(
                _Sql(("database_user", user.id), f"drop postgresql user {user.name}", "".join(sql))
            )
        return items

    def _dropped_databases(self, state: DesiredState, host: HostDatabases) -> list[_Item]:
        items: list[_Item] = []
        for db in state.databases:
            if not db.deleting:
                continue
            owner = pg_owner(db.name)
            if db.name in host.sizes:
                items.append(self.archive(db, host))
            if db.name in host.sizes or owner in host.roles:
                items.append(
                    _Sql(
                        ("database", db.id),
                        f"drop postgresql database {db.name}",
                        f"DROP DATABASE IF EXISTS {pg_ident(db.name)} WITH (FORCE);\n"
                        f"DROP ROLE IF EXISTS {pg_ident(owner)};\n",
                    )
                )
        return items
