"""What a transaction asks the worker to do once it commits: the hosts it made dirty, the
hosts with an ACME order to place, the tasks it queued.

Services write here while they decide; nothing reaches the queue before the commit (the
worker would read the old rows). ``panel.worker.tasks.install_after_commit`` drains the
outbox after a commit and empties it after a rollback. The queue is only a nudge: a message
lost here is found again by the periodic sweeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy.orm import Session

KEY = "konbit.outbox"


@dataclass
class Outbox:
    """The nudges a transaction owes the worker once it commits."""

    dirty_hosts: set[int] = field(default_factory=set)
    acme_hosts: set[int] = field(default_factory=set)
    queued_tasks: list[int] = field(default_factory=list)


def outbox(session: Session) -> Outbox:
    """The session's outbox for its current transaction (created on first use)."""
    box = session.info.get(KEY)
    if not isinstance(box, Outbox):
        box = session.info[KEY] = Outbox()
    return box


def take(session: Session) -> Outbox:
    """Remove and return the session's outbox (an empty one if nothing was written)."""
    box = session.info.pop(KEY, None)
    return box if isinstance(box, Outbox) else Outbox()
