"""DKIM keys of mail domains: made on the domain's mail host (the private part never leaves
it), the public part published in the zone, only then used for signing; rotation.

A key's life: ``published`` (its ``<selector>._domainkey`` TXT is in the zone; the key
task waits for every DNS server to take it), ``active`` (the mail host signs the domain's
mail with it: the domain's one key in the host's ``DesiredState.dkim_keys``), ``retired``
(a newer key signs; the record stays in the zone until ``retire_after``, so mail signed
before the switch still verifies, then a round drops it from the zone and its file from
the host).  One key per zone (``d=`` the domain; mail of its subdomains is signed with it).

When: a domain's first mailbox or alias queues the key task in the same transaction
(``ensure_key``, called by ``panel.mail.service``), so a new mail domain signs within
seconds; the worker's round (``due``) starts what no write did (mail domains older than
DKIM here, mail moved to another host, a key task that failed: again after an hour) and
drops retired keys.  The tasks themselves are in ``panel.dns.dkim_tasks``."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import string
from collections.abc import Iterable, Sequence
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import load_der_public_key
from sqlalchemy import ForeignKey, String, UniqueConstraint, select, union
from sqlalchemy.orm import Mapped, Session, mapped_column

from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import Base, ObjectStatus, utcnow
from panel.core.errors import Conflict
from panel.core.outbox import outbox
from panel.dns.schemas import txt_data
from panel.domains.models import Domain
from panel.mail.models import MailAlias, Mailbox
from panel.tasks.models import Task, TaskKind, TaskStatus
from provisioners.api import DkimKeyView

RETIRE_AFTER = dt.timedelta(days=7)  # a replaced key's record stays this long in the zone
RETRY_AFTER = dt.timedelta(hours=1)  # the round starts a failed key task again after this
TTL = 3600
MIN_BITS = 2048
UNDER_WAY = (TaskStatus.queued, TaskStatus.running)


class DkimState(enum.StrEnum):
    published = "published"  # in the zone, not signing yet
    active = "active"  # the mail host signs with it
    retired = "retired"  # replaced; in the zone until retire_after


class DkimKey(Base):
    """One DKIM key of a domain: its selector and public part (the private part is on the
    mail host ``host_id``, which made it)."""

    __tablename__ = "dkim_keys"
    __table_args__ = (UniqueConstraint("domain_id", "selector"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    domain_id: Mapped[int] = mapped_column(ForeignKey("domains.id", ondelete="CASCADE"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"), index=True)
    selector: Mapped[str] = mapped_column(String(63))
    public_key: Mapped[str] = mapped_column(String(1000))  # base64 DER SubjectPublicKeyInfo
    state: Mapped[str] = mapped_column(String(16), default=DkimState.published)
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    activated_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    retire_after: Mapped[dt.datetime | None] = mapped_column(default=None)


def record_name(selector: str) -> str:
    """The key's record, relative to its zone."""
    return f"{selector}._domainkey"


def record_data(public_key: str) -> str:
    """The key's TXT in zone-file form (strings of at most 255 characters)."""
    return txt_data(f"v=DKIM1; k=rsa; p={public_key}")


def published(session: Session) -> list[tuple[int, str, str]]:
    """(domain id, record name, TXT data) of every key the zones carry (all its states)."""
    rows = session.execute(
        select(DkimKey.domain_id, DkimKey.selector, DkimKey.public_key).order_by(DkimKey.id)
    )
    return [(d, record_name(sel), record_data(key)) for d, sel, key in rows]


def signing_keys(session: Session, host_id: int) -> tuple[DkimKeyView, ...]:
    """The keys a mail host signs with: its domains' active keys that it holds."""
    rows = session.execute(
        select(Domain.name, DkimKey.selector)
        .join(Domain, Domain.id == DkimKey.domain_id)
        .where(DkimKey.host_id == host_id, DkimKey.state == DkimState.active)
        .order_by(Domain.name)
    )
    return tuple(DkimKeyView(name, selector) for name, selector in rows)


def new_selector(taken: Iterable[str], now: dt.datetime) -> str:
    """ "k" and the UTC date (k20261208); a second key the same day k20261208b, and so on."""
    base = "k" + now.strftime("%Y%m%d")
    used = set(taken)
    for suffix in ["", *string.ascii_lowercase[1:]]:
        selector = f"{base}{suffix}"
        if selector not in used:
            return selector
    raise ValueError(f"26 DKIM keys made on {now:%Y-%m-%d} already")


def check_public_key(text: str) -> str:
    """The public part a mail host printed, if it is an RSA key of at least 2048 bits in
    base64 DER (anything else is refused: it goes into a zone)."""
    value = text.strip()
    try:
        key = load_der_public_key(base64.b64decode(value, validate=True))
    except (ValueError, binascii.Error) as exc:
        raise ValueError(f"not a DER public key in base64: {value[:80]!r}") from exc
    if not isinstance(key, rsa.RSAPublicKey) or key.key_size < MIN_BITS:
        raise ValueError(f"not an RSA key of at least {MIN_BITS} bits")
    return value


def mail_host_of(session: Session, domain_id: int) -> int | None:
    """The mail host of the domain's mail (every mailbox and alias of it lives there)."""
    for model in (Mailbox, MailAlias):
        host_id = session.scalar(
            select(model.host_id)
            .where(model.domain_id == domain_id, model.status != ObjectStatus.deleting)
            .limit(1)
        )
        if host_id is not None:
            return host_id
    return None


def under_way(session: Session, kind: str, domain_id: int) -> Task | None:
    """A queued or running task of ``kind`` for the domain (a handful at most: read in
    Python, the domain being in the task's params)."""
    tasks = session.scalars(select(Task).where(Task.kind == kind, Task.status.in_(UNDER_WAY)))
    return next((t for t in tasks if t.params.get("domain_id") == domain_id), None)


def start(session: Session, kind: str, domain: Domain, user_id: int | None, **params: Any) -> Task:
    """A DKIM task for the domain, queued for the worker once the transaction commits."""
    task = Task(
        account_id=domain.account_id,
        kind=kind,
        params={"domain_id": domain.id, **params},
        user_id=user_id,
    )
    session.add(task)
    session.flush()
    outbox(session).queued_tasks.append(task.id)
    return task


def ensure_key(session: Session, domain: Domain, host_id: int, user_id: int | None) -> Task | None:
    """The domain's key task, unless its mail host has a key of it already or one is on
    its way (a mailbox or alias created: the domain's first one starts it)."""
    have = session.scalar(
        select(DkimKey.id)
        .where(
            DkimKey.domain_id == domain.id,
            DkimKey.host_id == host_id,
            DkimKey.state.in_([DkimState.published, DkimState.active]),
        )
        .limit(1)
    )
    if have is not None or under_way(session, TaskKind.dkim_key, domain.id) is not None:
        return None
    return start(session, TaskKind.dkim_key, domain, user_id)


def rotate(session: Session, principal: Principal, domain: Domain) -> Task:
    """A new key for the domain (``POST /domains/{id}/dkim``): it signs once published,
    the current one stays in the zone for ``RETIRE_AFTER``."""
    if mail_host_of(session, domain.id) is None:
        raise Conflict(
            f"{domain.name} has no mail yet: its first mailbox or alias makes its DKIM key."
        )
    running = under_way(session, TaskKind.dkim_key, domain.id)
    if running is not None:
        raise Conflict(f"Task {running.id} is making a DKIM key for {domain.name}; wait for it.")
    task = start(session, TaskKind.dkim_key, domain, principal.user.id, rotate=True)
    audit.record(
        session, principal, task.kind, domain, {"task": {"new": task.id}},
        account_id=domain.account_id,
    )  # fmt: skip
    return task


def due(session: Session, now: dt.datetime | None = None) -> list[int]:
    """The worker's round: a key task for each mail domain whose mail host holds no key
    of it (none started, or the last failed more than ``RETRY_AFTER`` ago), a drop task for
    each domain with retired keys past their ``retire_after``.  Returns the tasks' ids."""
    now = now or utcnow()
    started: list[int] = []
    live = ObjectStatus.deleting
    mail = session.execute(
        union(
            *(select(m.domain_id, m.host_id).where(m.status != live) for m in (Mailbox, MailAlias))
        )
    ).all()
    keyed = set(
        session.execute(
            select(DkimKey.domain_id, DkimKey.host_id).where(
                DkimKey.state.in_([DkimState.published, DkimState.active])
            )
        ).all()
    )
    wanting = {d: h for d, h in mail if (d, h) not in keyed}
    if wanting:
        recent = _recent(session, TaskKind.dkim_key, now - RETRY_AFTER)
        for domain_id, host_id in sorted(wanting.items()):
            domain = session.get(Domain, domain_id)
            if domain is None or domain.status == live or domain_id in recent:
                continue
            task = ensure_key(session, domain, host_id, None)
            if task is not None:
                started.append(task.id)
    expired = session.scalars(
        select(DkimKey).where(DkimKey.state == DkimState.retired, DkimKey.retire_after <= now)
    ).all()
    by_domain: dict[int, list[int]] = {}
    for key in expired:
        by_domain.setdefault(key.domain_id, []).append(key.id)
    for domain_id, ids in sorted(by_domain.items()):
        domain = session.get(Domain, domain_id)
        if domain is None or under_way(session, TaskKind.dkim_drop, domain_id) is not None:
            continue
        started.append(start(session, TaskKind.dkim_drop, domain, None, key_ids=ids).id)
    return started


def _recent(session: Session, kind: str, since: dt.datetime) -> set[int]:
    """Domains a task of ``kind`` was started for since ``since`` (whatever its end)."""
    tasks = session.scalars(select(Task).where(Task.kind == kind, Task.created_at >= since))
    return {int(d) for t in tasks if (d := t.params.get("domain_id")) is not None}


def keys_of(session: Session, domain_id: int) -> Sequence[DkimKey]:
    """The domain's keys, newest first."""
    return session.scalars(
        select(DkimKey).where(DkimKey.domain_id == domain_id).order_by(DkimKey.id.desc())
    ).all()
