"""The outbox: a transaction's nudges reach the queue after its commit, in order (ACME orders,
tasks, hosts), never before it, and never after a rollback."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from huey import MemoryHuey
from sqlalchemy.orm import Session

import panel.models  # noqa: F401
from panel.core.db import Base, Database
from panel.core.outbox import KEY, Outbox, outbox
from panel.hosts.models import Host
from panel.hosts.service import bump_generations
from panel.tasks.models import Task, TaskKind
from panel.tasks.service import enqueue
from panel.worker.tasks import Tasks, install_after_commit


class Calls:
    """What reached the queue, in order."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, int]] = []

    def recorder(self, name: str) -> Callable[[int], None]:
        def record(obj_id: int) -> None:
            self.seen.append((name, obj_id))

        return record


World = tuple[Database, Calls, Tasks]


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    db = Database(f"sqlite:///{tmp_path / 'outbox.sqlite3'}")
    Base.metadata.create_all(db.engine)
    calls = Calls()
    tasks = Tasks(huey=MemoryHuey(utc=True), reconcile=calls.recorder("reconcile"), sweep=None,
                  db=db, acme=calls.recorder("acme"), lifecycle=calls.recorder("task"))
    install_after_commit(db, tasks)
    with db.session() as session:
        session.add_all([Host(name=f"h{i}", address=f"10.0.0.{i}", host_key="k") for i in (1, 2)])
        session.commit()
    yield db, calls, tasks
    db.engine.dispose()


def _write(session: Session) -> Task:
    """One write of each kind: two dirty hosts, an ACME order, a queued task."""
    bump_generations(session, [2, 1])
    outbox(session).acme_hosts.add(2)
    return enqueue(session, Task(kind=TaskKind.backup, account_id=None, params={}))


def test_the_outbox_is_one_typed_object_per_session(world: World) -> None:
    db, _calls, _tasks = world
    with db.session() as session:
        box = outbox(session)
        assert box is outbox(session)
        assert isinstance(session.info[KEY], Outbox)
        assert box == Outbox()


def test_a_commit_drains_the_outbox_in_order(world: World) -> None:
    db, calls, _tasks = world
    with db.session() as session:
        task = _write(session)
        assert outbox(session) == Outbox(dirty_hosts={1, 2}, acme_hosts={2},
                                         queued_tasks=[task.id])
        assert calls.seen == []  # nothing before the commit: the worker would read old rows
        session.commit()
        assert calls.seen == [("acme", 2), ("task", task.id), ("reconcile", 1),
                              ("reconcile", 2)]
        assert KEY not in session.info
        session.commit()  # a second commit owes nothing
        assert len(calls.seen) == 4


def test_a_rollback_empties_the_outbox(world: World) -> None:
    db, calls, _tasks = world
    with db.session() as session:
        _write(session)
        session.rollback()
        assert KEY not in session.info
        session.commit()
    assert calls.seen == []
    with db.session() as session:
        assert [h.desired_generation for h in session.query(Host).order_by(Host.id)] == [0, 0]


def test_an_enqueue_failure_does_not_stop_the_rest(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    db, calls, tasks = world

    def broken(task_id: int) -> None:
        raise RuntimeError("queue down")

    tasks.lifecycle = broken
    with db.session() as session:
        task = _write(session)
        session.commit()
    assert calls.seen == [("acme", 2), ("reconcile", 1), ("reconcile", 2)]
    assert any(r.getMessage() == "could not enqueue a task" and r.task_id == task.id
               for r in caplog.records)
