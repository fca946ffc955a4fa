"""Database hosts: what both engines share (MariaDB and PostgreSQL databases, users and
grants, driven over SSH).

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
B64 = r"[A-Za-z0-9+/]+={0,2}"
SCRAM_RE = re.compile(rf"SCRAM-SHA-256\$[0-9]{{1,7}}:{B64}\${B64}:{B64}")

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


BATCH_ESCAPES = {"t": "\t", "n": "\n", "0": "\0", "\\": "\\"}


def unbatch(value: str) -> str:
    """Undo ``mariadb --batch`` escaping (``\\_`` in ``mysql.db`` comes out doubled)."""
    return re.sub(r"\\(.)", lambda m: BATCH_ESCAPES.get(m.group(1), m.group(1)), value)


def parse_facts(text: str, batch_escaped: bool = False) -> HostDatabases:
    """Tab-separated lines, a tag first; ``OK`` last when the query answered."""
    out = HostDatabases()
    for line in text.splitlines():
        tag, _, rest = line.partition("\t")
        f = [unbatch(v) for v in rest.split("\t")] if batch_escaped else rest.split("\t")
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
class Sql:
    """Statements for one object; consecutive ones are batched into steps."""

    ref: ObjectRef
    description: str
    sql: str


SqlItem = Sql | Step

# Dumps a database into a gzip archive; exits non-zero (and leaves no archive) unless the
# whole dump made it, so the DROP that follows in the same batch never runs after a
# failed dump.  dash has no pipefail: the dump's status comes back on fd 3.
ARCHIVE = r"""
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

FAIL = 'printf "%s\\n" "$1" >&2; exit 1'


def failing(description: str, message: str, refs: Iterable[ObjectRef] = ()) -> Step:
    """A step that fails with a message: how a plugin reports a problem it found.  In the
    "after" phase, so a configuration fix still goes live before it."""
    return Step(
        description,
        ("sh", "-c", FAIL, "konbit", message),
        phase="after",
        object_ids=tuple(refs),
    )


class DatabaseEngineBase(Provisioner):
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

    def plan_sql(self, state: DesiredState, host: HostDatabases) -> list[SqlItem]:
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
                failing(
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
                bad.append(failing(f"check {obj.name!r}", problem, [(kind, obj.id)]))
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

    def _batch(self, items: list[SqlItem], host: HostDatabases) -> list[Step]:
        """Consecutive statements: one step per object when few, else chunks (a failing
        chunk blames every object in it)."""
        steps: list[Step] = []
        run: list[Sql] = []

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
            if isinstance(item, Sql):
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
                ARCHIVE,
                "konbit",
                self.engine,
                db.name,
                f"{ARCHIVE_DIR}/{db.account.slug}",
                host.bin or "/usr/bin",
            ),
            phase="after",
            object_ids=(("database", db.id),),
        )
