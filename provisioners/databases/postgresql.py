"""PostgreSQL: databases owned by a NOLOGIN role per database; users are its members."""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    DesiredState,
    Fact,
    ManagedFile,
    Step,
)
from provisioners.databases.common import (
    DatabaseEngineBase,
    HostDatabases,
    Sql,
    SqlItem,
    parse_facts,
    pg_ident,
    pg_owner,
    pg_str,
)
from provisioners.databases.operations import PostgreSQLOperations

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


class PostgreSQL(DatabaseEngineBase):
    """Databases owned by a NOLOGIN role per database; users are its members."""

    name = "postgresql"
    fact = Fact("postgresql", _PG_FACTS, parse_facts)
    facts = (fact,)
    engine = "postgresql"

    def operations(self) -> PostgreSQLOperations:
        """Dumps, loads, archives, locks and drops for the panel's tasks."""
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

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        return [
            *self._databases(state, host),
            *self._users(state, host),
            *self._dropped_users(state, host),
            *self._dropped_databases(state, host),
        ]

    def _databases(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        items: list[SqlItem] = []
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
                    Sql(("database", db.id), f"{verb} postgresql database {db.name}", "".join(sql))
                )
        return items

    def _users(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        items: list[SqlItem] = []
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
                    Sql(
                        ("database_user", user.id),
                        f"{verb} postgresql user {user.name}",
                        "".join(sql),
                    )
                )
        return items

    def _dropped_users(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        items: list[SqlItem] = []
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
                Sql(("database_user", user.id), f"drop postgresql user {user.name}", "".join(sql))
            )
        return items

    def _dropped_databases(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        items: list[SqlItem] = []
        for db in state.databases:
            if not db.deleting:
                continue
            owner = pg_owner(db.name)
            if db.name in host.sizes:
                items.append(self.archive(db, host))
            if db.name in host.sizes or owner in host.roles:
                items.append(
                    Sql(
                        ("database", db.id),
                        f"drop postgresql database {db.name}",
                        f"DROP DATABASE IF EXISTS {pg_ident(db.name)} WITH (FORCE);\n"
                        f"DROP ROLE IF EXISTS {pg_ident(owner)};\n",
                    )
                )
        return items
