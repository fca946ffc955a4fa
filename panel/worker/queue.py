"""Huey storage on SQLAlchemy Core, so the task queue lives in the panel's own database.

One code path serves SQLite (the embedded default) and PostgreSQL, where several
consumers on several machines share one queue with no extra service: every write
is a single atomic statement (``DELETE ... RETURNING``, ``INSERT ... ON CONFLICT``),
and on PostgreSQL a dequeue claims its row with ``FOR UPDATE SKIP LOCKED`` so that
concurrent consumers never wait on, or both take, the same task.

The ``huey_*`` tables are queue plumbing, not panel schema: the storage creates them
itself (``metadata.create_all(checkfirst=True)``) and they stay out of Alembic, so
upgrading Huey or draining the queue never needs a panel migration.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import sqlite3
import time
import weakref
from collections.abc import Iterable
from typing import Any, Final

from huey import Huey
from huey.constants import EmptyData
from huey.exceptions import ConfigurationError
from huey.storage import BaseStorage
from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Double,
    Engine,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Table,
    Text,
    and_,
    cast,
    delete,
    extract,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError

from panel.core.db import make_engine

SUPPORTED_DIALECTS: Final = ("sqlite", "postgresql")
MIN_SQLITE: Final = (3, 35, 0)  # RETURNING and upsert-RETURNING
_ID = BigInteger().with_variant(Integer(), "sqlite")  # INTEGER PRIMARY KEY is SQLite's rowid
_LOCK_KEY: Final = 0x6B6F6E626974  # pg advisory lock serialising table creation ("konbit")


class QueueSchema:
    """The four ``<prefix>_*`` tables, mirroring Huey's own SQL storages."""

    def __init__(self, prefix: str = "huey") -> None:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,40}", prefix):
            raise ConfigurationError(f"invalid table prefix {prefix!r}")
        self.metadata = MetaData()
        self.task = Table(
            f"{prefix}_task",
            self.metadata,
            Column("id", _ID, primary_key=True, autoincrement=True),
            Column("queue", Text, nullable=False),
            Column("data", LargeBinary, nullable=False),
            Column("priority", Double, nullable=False, server_default="0"),
        )
        Index(
            f"{prefix}_task_queue_priority_id",
            self.task.c.queue,
            self.task.c.priority.desc(),
            self.task.c.id,
        )
        self.schedule = Table(
            f"{prefix}_schedule",
            self.metadata,
            Column("id", _ID, primary_key=True, autoincrement=True),
            Column("queue", Text, nullable=False),
            Column("data", LargeBinary, nullable=False),
            Column("timestamp", Double, nullable=False),
        )
        Index(
            f"{prefix}_schedule_queue_timestamp", self.schedule.c.queue, self.schedule.c.timestamp
        )
        self.kv = Table(
            f"{prefix}_kv",
            self.metadata,
            Column("queue", Text, primary_key=True),
            Column("key", Text, primary_key=True),
            Column("value", LargeBinary, nullable=False),
            # Database-clock epoch seconds after which the key is gone (put_if_empty ttl).
            Column("expires_at", Double, nullable=True),
        )
        self.counter = Table(
            f"{prefix}_counter",
            self.metadata,
            Column("queue", Text, primary_key=True),
            Column("key", Text, primary_key=True),
            Column("value", BigInteger, nullable=False, server_default="0"),
        )


def _epoch(ts: dt.datetime) -> float:
    """Huey (utc=True) hands naive UTC datetimes; local-time reading would skew machines."""
    return (ts.replace(tzinfo=dt.UTC) if ts.tzinfo is None else ts).timestamp()


def _key(key: str | bytes) -> str:
    return key.decode() if isinstance(key, bytes) else key


class SqlAlchemyStorage(BaseStorage):  # type: ignore[misc]  # huey is untyped
    """Huey storage in ``huey_*`` tables of a SQLite or PostgreSQL database.

    Pass ``url`` (the storage makes and owns its engine via ``make_engine``) or an
    existing ``engine`` (left open by ``close``). Huey's consumer polls (``blocking``
    is False); its ``max_delay`` bounds how long a new task may wait when idle.
    """

    blocking = False
    priority = True

    def __init__(
        self,
        name: str = "huey",
        url: str | None = None,
        engine: Engine | None = None,
        table_prefix: str = "huey",
        create_tables: bool = True,
    ) -> None:
        super().__init__(name)
        if (url is None) == (engine is None):
            raise ConfigurationError("give SqlAlchemyStorage exactly one of url= or engine=")
        if engine is None:
            assert url is not None
            engine = make_engine(url)
        self._owns_engine = url is not None
        self.engine = engine
        self.dialect: str = self.engine.dialect.name
        if self.dialect not in SUPPORTED_DIALECTS:
            raise ConfigurationError(
                f"queue storage needs SQLite or PostgreSQL, not {self.dialect}"
            )
        if self.dialect == "sqlite":
            if sqlite3.sqlite_version_info < MIN_SQLITE:
                raise ConfigurationError(f"SQLite >= 3.35 needed, found {sqlite3.sqlite_version}")
            if self.engine.url.database in (None, "", ":memory:"):
                raise ConfigurationError("an in-memory SQLite queue is private to one connection")
        self.tables = QueueSchema(table_prefix)
        _dispose_after_fork(self.engine)
        if create_tables:
            self.create_tables()

    # -- plumbing ---------------------------------------------------------------

    def create_tables(self) -> None:
        """Create the tables if missing; safe when several workers start at once."""
        for attempt in range(10):
            try:
                with self.engine.begin() as conn:
                    if self.dialect == "postgresql":
                        conn.execute(select(func.pg_advisory_xact_lock(_LOCK_KEY)))
                    self.tables.metadata.create_all(conn, checkfirst=True)
                return
            except OperationalError as exc:
                # SQLite: another process created them first, or wrote since this
                # transaction read the schema (WAL refuses the upgrade to a writer at
                # once, without the busy handler): read the schema again.
                again = "already exists" in str(exc) or "database is locked" in str(exc)
                if not again or attempt == 9:
                    raise
                time.sleep(0.01 * (attempt + 1))

    def close(self) -> bool:
        """Release pooled connections (Huey's consumer calls this before forking)."""
        if not self._owns_engine:
            return False
        self.engine.dispose()
        return True

    def _insert(self, table: Table) -> postgresql.Insert | sqlite.Insert:
        """The dialect's INSERT, which carries ON CONFLICT on both backends."""
        return postgresql.insert(table) if self.dialect == "postgresql" else sqlite.insert(table)

    def _now(self) -> ColumnElement[float]:
        """The database's clock, so that machines with skewed clocks agree on expiry."""
        if self.dialect == "postgresql":
            return cast(extract("epoch", func.now()), Double)
        return (func.julianday("now") - literal(2440587.5)) * literal(86400.0)

    def _live(self) -> ColumnElement[bool]:
        kv = self.tables.kv
        return or_(kv.c.expires_at.is_(None), kv.c.expires_at > self._now())

    def _scalar(self, stmt: Any) -> Any:
        with self.engine.connect() as conn:
            return conn.execute(stmt).scalar()

    def _all(self, stmt: Any) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(stmt).all())

    def _write(self, stmt: Any) -> list[Any]:
        with self.engine.begin() as conn:
            result = conn.execute(stmt)
            return list(result.all()) if result.returns_rows else []

    # -- queue ------------------------------------------------------------------

    def enqueue(self, data: bytes, priority: float | None = None) -> None:
        t = self.tables.task
        self._write(t.insert().values(queue=self.name, data=data, priority=priority or 0))

    def dequeue(self) -> bytes | None:
        """Claim the next task (highest priority, then FIFO) in one atomic statement."""
        t = self.tables.task
        mine = t.c.queue == self.name
        if self.dialect == "sqlite" and self._scalar(select(t.c.id).where(mine).limit(1)) is None:
            return None  # an idle poll takes no SQLite write lock
        head = (
            select(t.c.id)
            .where(mine)
            .order_by(t.c.priority.desc(), t.c.id)
            .limit(1)
            .with_for_update(skip_locked=True)  # rendered on PostgreSQL only
            .scalar_subquery()
        )
        rows = self._write(delete(t).where(t.c.id == head).returning(t.c.data))
        return bytes(rows[0][0]) if rows else None

    def queue_size(self) -> int:
        t = self.tables.task
        return int(self._scalar(select(func.count()).where(t.c.queue == self.name)))

    def enqueued_items(self, limit: int | None = None) -> list[bytes]:
        t = self.tables.task
        stmt = select(t.c.data).where(t.c.queue == self.name).order_by(t.c.priority.desc(), t.c.id)
        return [bytes(d) for (d,) in self._all(stmt.limit(limit))]

    def flush_queue(self) -> None:
        self._write(delete(self.tables.task).where(self.tables.task.c.queue == self.name))

    # -- schedule ---------------------------------------------------------------

    def add_to_schedule(self, data: bytes, ts: dt.datetime) -> None:
        s = self.tables.schedule
        self._write(s.insert().values(queue=self.name, data=data, timestamp=_epoch(ts)))

    def read_schedule(self, ts: dt.datetime) -> list[bytes]:
        """Take every task due at ``ts``; each is handed to exactly one scheduler."""
        s = self.tables.schedule
        due = select(s.c.id).where(s.c.queue == self.name, s.c.timestamp <= _epoch(ts))
        if self.dialect == "sqlite" and self._scalar(due.limit(1)) is None:
            return []  # the scheduler polls every second: no write lock for nothing
        due = due.with_for_update(skip_locked=True)
        rows = self._write(
            delete(s).where(s.c.id.in_(due)).returning(s.c.timestamp, s.c.id, s.c.data)
        )
        return [bytes(data) for _, _, data in sorted(rows, key=lambda r: (r[0], r[1]))]

    def schedule_size(self) -> int:
        s = self.tables.schedule
        return int(self._scalar(select(func.count()).where(s.c.queue == self.name)))

    def scheduled_items(self, limit: int | None = None) -> list[bytes]:
        s = self.tables.schedule
        stmt = select(s.c.data).where(s.c.queue == self.name).order_by(s.c.timestamp, s.c.id)
        return [bytes(d) for (d,) in self._all(stmt.limit(limit))]

    def flush_schedule(self) -> None:
        self._write(delete(self.tables.schedule).where(self.tables.schedule.c.queue == self.name))

    # -- key/value: results, revocations, locks ----------------------------------

    def put_data(self, key: str | bytes, value: bytes, is_result: bool = False) -> None:
        kv = self.tables.kv
        ins = self._insert(kv).values(queue=self.name, key=_key(key), value=value, expires_at=None)
        self._write(
            ins.on_conflict_do_update(
                index_elements=[kv.c.queue, kv.c.key],
                set_={"value": ins.excluded.value, "expires_at": None},
            )
        )

    def peek_data(self, key: str | bytes) -> Any:
        kv = self.tables.kv
        rows = self._all(
            select(kv.c.value).where(kv.c.queue == self.name, kv.c.key == _key(key), self._live())
        )
        return bytes(rows[0][0]) if rows else EmptyData

    def peek_many(self, keys: Iterable[str | bytes]) -> dict[str, bytes]:
        kv = self.tables.kv
        names = [_key(k) for k in keys]
        if not names:
            return {}
        stmt = select(kv.c.key, kv.c.value).where(
            kv.c.queue == self.name, kv.c.key.in_(names), self._live()
        )
        return {k: bytes(v) for k, v in self._all(stmt)}

    def pop_data(self, key: str | bytes) -> Any:
        kv = self.tables.kv
        this = and_(kv.c.queue == self.name, kv.c.key == _key(key))
        # Liveness stays in WHERE: SQLite 3.40 mis-evaluates `col IS NULL` in RETURNING.
        with self.engine.begin() as conn:
            row = conn.execute(delete(kv).where(this, self._live()).returning(kv.c.value)).first()
            if row is None:
                conn.execute(delete(kv).where(this))  # drop an expired leftover
        return EmptyData if row is None else bytes(row[0])

    def has_data_for_key(self, key: str | bytes) -> bool:
        kv = self.tables.kv
        stmt = select(kv.c.key).where(kv.c.queue == self.name, kv.c.key == _key(key), self._live())
        return bool(self._all(stmt))

    def put_if_empty(self, key: str | bytes, value: bytes, ttl: float | None = None) -> bool:
        """Atomically set ``key`` unless it holds a live value; backs ``huey.lock_task``.

        One ``INSERT ... ON CONFLICT DO UPDATE ... WHERE expired`` statement: a
        concurrent writer of the same key waits for the first and then sees it
        set. ``ttl`` (seconds, on the database clock) lets a lock outlive a dead
        worker by no more than that.
        """
        kv = self.tables.kv
        expires = None if ttl is None else self._now() + literal(float(ttl))
        ins = self._insert(kv).values(
            queue=self.name, key=_key(key), value=value, expires_at=expires
        )
        stmt = ins.on_conflict_do_update(
            index_elements=[kv.c.queue, kv.c.key],
            set_={"value": ins.excluded.value, "expires_at": ins.excluded.expires_at},
            where=and_(kv.c.expires_at.is_not(None), kv.c.expires_at <= self._now()),
        ).returning(kv.c.key)
        return bool(self._write(stmt))

    def result_store_size(self) -> int:
        kv = self.tables.kv
        return int(self._scalar(select(func.count()).where(kv.c.queue == self.name, self._live())))

    def result_items(self) -> dict[str, bytes]:
        kv = self.tables.kv
        stmt = select(kv.c.key, kv.c.value).where(kv.c.queue == self.name, self._live())
        return {k: bytes(v) for k, v in self._all(stmt)}

    def flush_results(self) -> None:
        self._write(delete(self.tables.kv).where(self.tables.kv.c.queue == self.name))

    # -- counters (chords, task retry counts) ------------------------------------

    def incr(self, key: str | bytes, amount: int = 1) -> int:
        c = self.tables.counter
        ins = self._insert(c).values(queue=self.name, key=_key(key), value=amount)
        stmt = ins.on_conflict_do_update(
            index_elements=[c.c.queue, c.c.key],
            set_={"value": c.c.value + ins.excluded.value},
        ).returning(c.c.value)
        return int(self._write(stmt)[0][0])

    def delete_counter(self, key: str | bytes) -> None:
        c = self.tables.counter
        self._write(delete(c).where(c.c.queue == self.name, c.c.key == _key(key)))

    def flush_counters(self) -> None:
        self._write(delete(self.tables.counter).where(self.tables.counter.c.queue == self.name))


def _dispose_after_fork(engine: Engine) -> None:
    """A forked child must not reuse the parent's pooled sockets (SQLAlchemy's advice)."""
    ref = weakref.ref(engine)

    def after_in_child() -> None:
        alive = ref()
        if alive is not None:
            alive.dispose(close=False)

    os.register_at_fork(after_in_child=after_in_child)


def make_huey(
    url: str, name: str = "konbit", immediate: bool = False, *, results: bool = False
) -> Huey:
    """The panel's Huey: queue in the database at ``url`` (``Settings.effective_database_url``).

    Results are off by default: tasks report through the panel's own tables, and
    unread results would pile up. ``immediate=True`` runs tasks inline on Huey's
    memory storage (tests, demo) and never touches the database.
    """
    return Huey(
        name,
        results=results,
        utc=True,
        immediate=immediate,
        storage_class=SqlAlchemyStorage,
        url=url,
    )
