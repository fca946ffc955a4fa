"""The Huey storage on SQLAlchemy: same behaviour on SQLite and PostgreSQL, many consumers."""

from __future__ import annotations

import datetime as dt
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from huey import Huey
from huey.constants import EmptyData
from huey.exceptions import ConfigurationError, TaskLockedException
from huey.storage import MemoryStorage
from sqlalchemy import Column, Integer, MetaData, String, Table, func, select

from panel.core.db import make_engine
from panel.worker.queue import SqlAlchemyStorage, make_huey
from tests.conftest import postgres_database

PG_ENV = "KONBIT_TEST_POSTGRES_URL"
ROOT = Path(__file__).resolve().parents[2]
DONE = Table(
    "q_done",
    MetaData(),
    Column("n", Integer, nullable=False),
    Column("consumer", String(16), nullable=False),
)


# -- databases -----------------------------------------------------------------


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def queue_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """An empty database of each kind; PostgreSQL gets its own, dropped at the end."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('queue') / 'queue.sqlite3'}"
        return
    with postgres_database("konbit_q") as url:
        yield url


@pytest.fixture
def storage(queue_url: str) -> Iterator[SqlAlchemyStorage]:
    """A storage on its own queue name, so tests share tables but not data."""
    store = SqlAlchemyStorage(f"t{uuid.uuid4().hex[:8]}", url=queue_url)
    yield store
    store.flush_all()
    store.close()


def _race(n: int, fn: Callable[[int], Any]) -> list[Any]:
    """Run ``fn(i)`` in ``n`` threads released together; each has its own connection."""
    barrier = threading.Barrier(n)
    results: list[Any] = [None] * n
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            barrier.wait()
            results[i] = fn(i)
        except BaseException as exc:  # surfaced below, in the test's thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]
    return results


# -- queue ---------------------------------------------------------------------


def test_priority_first_then_fifo(storage: SqlAlchemyStorage) -> None:
    for data, priority in [(b"a", None), (b"b", 5), (b"c", 0), (b"d", 5), (b"e", -1), (b"f", 9)]:
        storage.enqueue(data, priority)
    assert storage.queue_size() == 6
    assert storage.enqueued_items() == [b"f", b"b", b"d", b"a", b"c", b"e"]
    assert storage.enqueued_items(limit=2) == [b"f", b"b"]
    assert [storage.dequeue() for _ in range(7)] == [b"f", b"b", b"d", b"a", b"c", b"e", None]
    assert storage.queue_size() == 0
    storage.enqueue(b"x")
    storage.flush_queue()
    assert storage.dequeue() is None


def test_queue_names_are_separate(storage: SqlAlchemyStorage, queue_url: str) -> None:
    other = SqlAlchemyStorage("other-" + storage.name, url=queue_url)
    try:
        other.enqueue(b"theirs")
        assert storage.dequeue() is None
        assert other.dequeue() == b"theirs"
    finally:
        other.close()


def test_concurrent_dequeue_hands_out_each_task_once(storage: SqlAlchemyStorage) -> None:
    items = {f"task-{i}".encode() for i in range(120)}
    for item in sorted(items):
        storage.enqueue(item)

    def drain(_: int) -> list[bytes]:
        got: list[bytes] = []
        while (data := storage.dequeue()) is not None:
            got.append(data)
        return got

    taken = [data for batch in _race(6, drain) for data in batch]
    assert len(taken) == len(items)
    assert set(taken) == items


# -- schedule ------------------------------------------------------------------


def test_schedule_is_read_by_time(storage: SqlAlchemyStorage) -> None:
    t0 = dt.datetime(2030, 1, 1, 12, 0, 0)  # naive UTC, as Huey (utc=True) passes it
    storage.add_to_schedule(b"late", t0 + dt.timedelta(seconds=2))
    storage.add_to_schedule(b"first", t0)
    storage.add_to_schedule(b"second", t0 + dt.timedelta(seconds=1))
    storage.add_to_schedule(b"also-first", t0)
    assert storage.schedule_size() == 4
    assert storage.scheduled_items() == [b"first", b"also-first", b"second", b"late"]
    assert storage.scheduled_items(limit=1) == [b"first"]

    assert storage.read_schedule(t0 - dt.timedelta(seconds=1)) == []
    aware = (t0 + dt.timedelta(seconds=1)).replace(tzinfo=dt.UTC)
    assert storage.read_schedule(aware) == [b"first", b"also-first", b"second"]
    assert storage.read_schedule(aware) == []  # taken once
    assert storage.scheduled_items() == [b"late"]
    storage.flush_schedule()
    assert storage.schedule_size() == 0


def test_aware_and_naive_times_agree(storage: SqlAlchemyStorage) -> None:
    """Naive means UTC whatever the machine's zone, so that machines agree."""
    paris = dt.timezone(dt.timedelta(hours=1))
    storage.add_to_schedule(b"x", dt.datetime(2030, 1, 1, 13, 0, tzinfo=paris))
    assert storage.read_schedule(dt.datetime(2030, 1, 1, 11, 59)) == []
    assert storage.read_schedule(dt.datetime(2030, 1, 1, 12, 0)) == [b"x"]


# -- key/value and locks -------------------------------------------------------


def test_key_value_store(storage: SqlAlchemyStorage) -> None:
    assert storage.peek_data("k") is EmptyData
    storage.put_data("k", b"v1")
    storage.put_data(b"k", b"v2", is_result=True)  # bytes keys are the same keys
    storage.put_data("j", b"\x00\xff")
    assert storage.peek_data("k") == b"v2"
    assert storage.has_data_for_key("k")
    assert storage.peek_many(["k", "j", "missing"]) == {"k": b"v2", "j": b"\x00\xff"}
    assert storage.peek_many([]) == {}
    assert storage.result_items() == {"k": b"v2", "j": b"\x00\xff"}
    assert storage.result_store_size() == 2
    assert storage.pop_data("k") == b"v2"
    assert storage.pop_data("k") is EmptyData
    assert not storage.has_data_for_key("k")
    assert storage.delete_data("j")
    assert not storage.delete_data("j")
    storage.put_data("z", b"1")
    storage.flush_results()
    assert storage.result_store_size() == 0


def test_counters(storage: SqlAlchemyStorage) -> None:
    assert storage.incr("c") == 1
    assert storage.incr("c", 5) == 6
    assert storage.incr(b"c", 0) == 6
    assert _race(8, lambda _: storage.incr("c")) and storage.incr("c", 0) == 14
    storage.delete_counter("c")
    assert storage.incr("c", 0) == 0
    storage.incr("d")
    storage.flush_counters()
    assert storage.incr("d", 0) == 0


def test_put_if_empty_is_atomic(storage: SqlAlchemyStorage) -> None:
    for round_ in range(8):
        key = f"lock-{round_}"

        def take(i: int, key: str = key) -> bool:
            return storage.put_if_empty(key, str(i).encode())

        wins = _race(8, take)
        assert wins.count(True) == 1
        assert storage.peek_data(key) == str(wins.index(True)).encode()
        assert not storage.put_if_empty(key, b"late")


def test_put_if_empty_ttl_expires_on_the_database_clock(storage: SqlAlchemyStorage) -> None:
    assert storage.put_if_empty("lock", b"a", ttl=0.3)
    assert not storage.put_if_empty("lock", b"b", ttl=0.3)
    assert storage.has_data_for_key("lock")
    time.sleep(0.4)
    assert not storage.has_data_for_key("lock")
    assert storage.peek_data("lock") is EmptyData
    assert storage.result_store_size() == 0
    assert storage.put_if_empty("lock", b"c")  # takes over the expired lock, for good
    assert storage.pop_data("lock") == b"c"
    storage.put_if_empty("gone", b"x", ttl=0.01)
    time.sleep(0.05)
    assert storage.pop_data("gone") is EmptyData


def test_huey_task_lock(queue_url: str) -> None:
    huey = make_huey(queue_url, name=f"lock{uuid.uuid4().hex[:8]}")
    lock = huey.lock_task("host-1")
    with lock:
        assert lock.is_locked()
        with pytest.raises(TaskLockedException), huey.lock_task("host-1"):
            pass
    assert not lock.is_locked()
    assert huey.flush_locks() == set()
    huey.storage.close()


# -- plumbing ------------------------------------------------------------------


def test_tables_created_once_when_workers_start_together(queue_url: str) -> None:
    prefix = f"race{uuid.uuid4().hex[:6]}"
    stores = _race(4, lambda i: SqlAlchemyStorage(f"q{i}", url=queue_url, table_prefix=prefix))
    stores[0].enqueue(b"ok")
    assert stores[0].dequeue() == b"ok"
    for store in stores:
        store.close()


def test_shared_engine_is_left_open(queue_url: str) -> None:
    engine = make_engine(queue_url)
    store = SqlAlchemyStorage("shared", engine=engine)
    assert store.close() is False
    assert store.queue_size() == 0
    engine.dispose()


def test_configuration_errors(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError):
        SqlAlchemyStorage("q")
    with pytest.raises(ConfigurationError):
        SqlAlchemyStorage("q", url="sqlite://")
    with pytest.raises(ConfigurationError):
        SqlAlchemyStorage("q", url=f"sqlite:///{tmp_path / 'q.db'}", table_prefix="x; drop")


def test_make_huey_defaults(tmp_path: Path) -> None:
    huey = make_huey(f"sqlite:///{tmp_path / 'q.db'}")
    assert huey.name == "konbit"
    assert huey.results is False
    assert huey.utc is True
    assert isinstance(huey.storage, SqlAlchemyStorage)
    huey.storage.close()


def test_make_huey_immediate_never_touches_the_database(tmp_path: Path) -> None:
    huey = make_huey(f"sqlite:///{tmp_path / 'missing-dir' / 'q.db'}", immediate=True)
    assert isinstance(huey.storage, MemoryStorage)
    seen: list[int] = []

    @huey.task()
    def add(n: int) -> None:
        seen.append(n)

    add(3)
    assert seen == [3]
    assert not (tmp_path / "missing-dir").exists()


# -- two real consumer processes -----------------------------------------------


def build(url: str, name: str) -> tuple[Huey, Any]:
    """The Huey and task shared by the test (producer) and the consumer processes."""
    huey = make_huey(url, name)
    engine = make_engine(url)

    @huey.task()
    def record(n: int) -> None:
        time.sleep(0.02)  # long enough that both consumers get a share
        with engine.begin() as conn:
            conn.execute(DONE.insert().values(n=n, consumer=os.environ.get("Q_WORKER_TYPE", "")))

    return huey, record


def consumer_main() -> None:
    """Entry point of a consumer process (see ``_start_consumer``)."""
    from huey.consumer import Consumer

    huey, _ = build(os.environ["Q_URL"], os.environ["Q_NAME"])
    consumer = Consumer(
        huey,
        workers=2,
        worker_type=os.environ["Q_WORKER_TYPE"],
        periodic=False,
        initial_delay=0.01,
        max_delay=0.1,
        check_worker_health=False,
    )
    Path(os.environ["Q_READY"]).touch()  # the test enqueues only once both consumers are up
    consumer.run()


def _start_consumer(url: str, name: str, worker_type: str, log: Path) -> subprocess.Popen[bytes]:
    env = dict(
        os.environ,
        Q_URL=url,
        Q_NAME=name,
        Q_WORKER_TYPE=worker_type,
        Q_READY=str(log.with_suffix(".ready")),
    )
    with log.open("wb") as out:
        return subprocess.Popen(
            [sys.executable, "-c", "from tests.unit.test_queue import consumer_main as m; m()"],
            cwd=ROOT,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


def test_two_consumer_processes_run_each_task_exactly_once(queue_url: str, tmp_path: Path) -> None:
    name = f"e2e{uuid.uuid4().hex[:8]}"
    engine = make_engine(queue_url)
    DONE.metadata.create_all(engine, checkfirst=True)
    with engine.begin() as conn:
        conn.execute(DONE.delete())
    huey, record = build(queue_url, name)
    logs = [tmp_path / "thread.log", tmp_path / "process.log"]
    consumers = [
        _start_consumer(queue_url, name, "thread", logs[0]),
        _start_consumer(queue_url, name, "process", logs[1]),  # forks: pools must not leak
    ]
    try:
        # On a loaded machine one consumer could drain the queue before the other starts.
        ready_by = time.monotonic() + 30
        while not all(log.with_suffix(".ready").exists() for log in logs):
            assert time.monotonic() < ready_by, "consumers did not start"
            time.sleep(0.05)
        for n in range(50):
            record(n)
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                count = conn.execute(select(func.count()).select_from(DONE)).scalar_one()
            if count >= 50:
                break
            time.sleep(0.05)
        time.sleep(0.3)  # a duplicate would land now
    finally:
        for proc in consumers:
            proc.send_signal(signal.SIGINT)  # Huey's graceful stop
        codes = [proc.wait(timeout=10) for proc in consumers]

    output = "\n".join(log.read_text() for log in logs)
    with engine.connect() as conn:
        rows = conn.execute(select(DONE.c.n, DONE.c.consumer)).all()
    pending = huey.pending_count()
    engine.dispose()
    huey.storage.close()

    assert sorted(n for n, _ in rows) == list(range(50)), output
    assert {who for _, who in rows} == {"thread", "process"}, "both consumers take tasks"
    assert codes == [0, 0], output
    assert "Traceback" not in output, output
    assert pending == 0
