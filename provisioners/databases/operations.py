"""The database plugins' operations for the panel's tasks (``provisioners.api.operations``):
dumps streamed out and loaded in, archives, locks, drops, for MariaDB and PostgreSQL.

Each script gets its values as "$1".. (never interpolated) and exits non-zero on any
failure; SQL names go through the plugin's quoting helpers.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api.operations import Command
from provisioners.databases.common import (
    ARCHIVE,
    ARCHIVE_DIR,
    mysql_account,
    mysql_ident,
    mysql_str,
    pg_ident,
    pg_owner,
    pg_str,
)

# With "$3", the gzip'd dump is also kept there as "$3.partial" (a move's archive of the
# old copy: its users are locked out, so the stream sent is the last state).
_DUMP = r"""
set -eu
engine="$1"; name="$2"; keep="${3:-}"
cd /
tmp=$(mktemp /var/tmp/konbit-dump.XXXXXX)
trap 'rm -f "$tmp"' EXIT
if [ "$engine" = mariadb ]; then
    mariadb-dump --single-transaction --routines --events --triggers --hex-blob -- "$name" > "$tmp"
else
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    chown postgres "$tmp"
    runuser -u postgres -- "$bin/pg_dump" --no-owner --no-privileges --dbname="$name" -f "$tmp"
fi
if [ -n "$keep" ]; then
    umask 077
    dir=$(dirname "$keep")
    install -d -m 0700 /var/lib/konbit/archive "$(dirname "$dir")" "$dir"
    gzip -c < "$tmp" | tee -- "$keep.partial"
else
    gzip -c < "$tmp"
fi
"""

# A gzip'd dump into an existing database; it replaces what the dump holds (MariaDB dumps
# drop each table first; PostgreSQL's public schema is emptied first, then restored as
# the database's owner role so the account's users keep their rights).
_LOAD = r"""
set -eu
engine="$1"; name="$2"; setrole="$3"; reset="$4"
cd /
tmp=$(mktemp /var/tmp/konbit-load.XXXXXX)
trap 'rm -f "$tmp"' EXIT
cat > "$tmp"
gzip -t "$tmp"
if [ "$engine" = mariadb ]; then
    gunzip -c "$tmp" | mariadb --batch -- "$name"
else
    bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
    chmod 0644 "$tmp"
    { printf '%s\n' "$reset" "$setrole"; gunzip -c "$tmp"; } | \
        runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d "$name" >/dev/null
fi
"""

_KEEP = 'for f; do mv -f -- "$f.partial" "$f"; done'  # dumps sent, now archived
_PSQL = (
    "bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1); cd / && "
    'runuser -u postgres -- "$bin/psql" -X -q -v ON_ERROR_STOP=1 -d postgres'
)
_PG_BIN = "ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1"
# The dump archive script wants PostgreSQL's bin directory as its last argument ("$4").
_ARCHIVE_WITH_PG_BIN = (
    f'bin=$({_PG_BIN}); script="$1"; shift; exec sh -c "$script" konbit "$@" "$bin"'
)

# Lock MariaDB users out: the ALTER USERs and a query of their sessions' ids on stdin,
# then those sessions killed (one that ended meanwhile is not an error).
_MARIADB_LOCK = r"""
set -eu
ids=$(mariadb --batch --skip-column-names)
kills=$(for id in $ids; do case "$id" in *[!0-9]*) ;; *) echo "KILL CONNECTION $id;" ;; esac; done)
if [ -n "$kills" ]; then
    printf '%s\n' "$kills" | mariadb --batch --force || true
fi
"""


class _Dumps:
    """What both engines share: the dump, load and archive scripts take the engine."""

    engine: str

    def dump(self, name: str) -> Command:
        return Command.script(_DUMP, self.engine, name, "")

    def dump_and_keep(self, name: str, keep: str) -> Command:
        return Command.script(_DUMP, self.engine, name, keep)

    def kept_path(self, slug: str, name: str, stamp: str) -> str:
        return f"{ARCHIVE_DIR}/{slug}/{name}-{self.engine}-{stamp}.sql.gz"

    def keep_dumps(self, paths: Sequence[str]) -> Command:
        return Command.script(_KEEP, *paths)

    def discard_dumps(self, paths: Sequence[str]) -> Command:
        return Command(("rm", "-f", "--", *(f"{p}.partial" for p in paths)))

    def archive_dir(self, slug: str) -> str:
        return f"{ARCHIVE_DIR}/{slug}"


class MariaDBOperations(_Dumps):
    """``DatabaseEngine`` for MariaDB: accounts ``'name'@'%'``, sessions killed by id."""

    engine = "mariadb"

    def load(self, name: str) -> Command:
        return Command.script(_LOAD, self.engine, name, "", "")

    def archive(self, name: str, slug: str) -> Command:
        return Command.script(ARCHIVE, self.engine, name, self.archive_dir(slug), "")

    def freeze(self, users: Sequence[str], *, lock: bool) -> Command:
        verb = "LOCK" if lock else "UNLOCK"
        sql = "".join(f"ALTER USER IF EXISTS {mysql_account(n)} ACCOUNT {verb};\n" for n in users)
        if not lock:
            return Command(("mariadb", "--batch", "--skip-column-names"), sql.encode())
        listed = ", ".join(mysql_str(n) for n in users)
        sql += (
            "SELECT id FROM information_schema.processlist "  # noqa: S608 - quoted
            f"WHERE user IN ({listed});\n"
        )
        return Command.script(_MARIADB_LOCK, stdin=sql.encode())

    def drop(self, databases: Sequence[str], users: Sequence[str]) -> Command:
        sql = "".join(f"DROP DATABASE IF EXISTS {mysql_ident(n)};\n" for n in databases) + "".join(
            f"DROP USER IF EXISTS {mysql_account(u)};\n" for u in users
        )
        return Command(("mariadb", "--batch"), sql.encode())


class PostgreSQLOperations(_Dumps):
    """``DatabaseEngine`` for PostgreSQL: each database owned by a NOLOGIN role
    (``pg_owner``), users its members; sessions ended by ``pg_terminate_backend``."""

    engine = "postgresql"

    def load(self, name: str) -> Command:
        owner = pg_ident(pg_owner(name))
        reset = f"DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public AUTHORIZATION {owner};"
        return Command.script(_LOAD, self.engine, name, f"SET ROLE {owner};", reset)

    def archive(self, name: str, slug: str) -> Command:
        return Command.script(
            _ARCHIVE_WITH_PG_BIN, ARCHIVE, self.engine, name, self.archive_dir(slug)
        )

    def freeze(self, users: Sequence[str], *, lock: bool) -> Command:
        attr = "NOLOGIN" if lock else "LOGIN"
        sql = "".join(f"ALTER ROLE {pg_ident(n)} {attr};\n" for n in users)
        if lock:
            listed = ", ".join(pg_str(n) for n in users)
            sql += (
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "  # noqa: S608
                f"WHERE usename IN ({listed});\n"  # all quoted by pg_str
            )
        return Command.script(_PSQL, stdin=sql.encode())

    def drop(self, databases: Sequence[str], users: Sequence[str]) -> Command:
        sql = (
            "".join(f"DROP DATABASE IF EXISTS {pg_ident(n)} WITH (FORCE);\n" for n in databases)
            + "".join(f"DROP ROLE IF EXISTS {pg_ident(u)};\n" for u in users)
            + "".join(f"DROP ROLE IF EXISTS {pg_ident(pg_owner(n))};\n" for n in databases)
        )
        return Command.script(_PSQL, stdin=sql.encode())
