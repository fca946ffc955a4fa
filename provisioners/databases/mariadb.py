"""MariaDB: databases ``CHARACTER SET utf8mb4``, users ``'name'@'%'``, grants per database."""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api import (
    DesiredState,
    Fact,
    HostView,
    ManagedFile,
)
from provisioners.databases.common import (
    DatabaseEngineBase,
    HostDatabases,
    Sql,
    SqlItem,
    mysql_account,
    mysql_grant_db,
    mysql_ident,
    mysql_str,
    parse_facts,
)
from provisioners.databases.operations import MariaDBOperations

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


class MariaDB(DatabaseEngineBase):
    """Databases ``CHARACTER SET utf8mb4``, users ``'name'@'%'``, grants per database."""

    name = "mariadb"
    # MariaDB's output comes ``--batch`` escaped.
    fact = Fact("mariadb", _MARIADB_FACTS, lambda text: parse_facts(text, batch_escaped=True))
    facts = (fact,)
    engine = "mariadb"

    def operations(self) -> MariaDBOperations:
        """Dumps, loads, archives, locks and drops for the panel's tasks."""
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

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
        items: list[SqlItem] = []
        for db in state.databases:
            if not db.deleting and db.name not in host.sizes:
                items.append(
                    Sql(
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
                    Sql(
                        ("database_user", user.id),
                        f"{verb} mariadb user {user.name}",
                        "\n".join(sql) + "\n",
                    )
                )
        for user in state.database_users:
            if user.deleting and user.name in host.users:
                items.append(
                    Sql(
                        ("database_user", user.id),
                        f"drop mariadb user {user.name}",
                        f"DROP USER IF EXISTS {mysql_account(user.name)};\n",
                    )
                )
        for db in state.databases:
            if db.deleting and db.name in host.sizes:
                items.append(self.archive(db, host))
                items.append(
                    Sql(
                        ("database", db.id),
                        f"drop mariadb database {db.name}",
                        f"DROP DATABASE IF EXISTS {mysql_ident(db.name)};\n",
                    )
                )
        return items
