"""Hosts and their reconciles."""

from __future__ import annotations

import datetime as dt
import enum
from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from panel.core.db import Base, Timestamped, Versioned, utcnow


class HostHealth(enum.StrEnum):
    unknown = "unknown"
    ok = "ok"
    failed = "failed"
    unreachable = "unreachable"


class Host(Base, Timestamped, Versioned):
    """A Debian machine the panel reconciles over SSH; its host key is pinned."""

    __tablename__ = "hosts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    address: Mapped[str] = mapped_column(String(253))
    ssh_port: Mapped[int] = mapped_column(default=22)
    ssh_user: Mapped[str] = mapped_column(String(32), default="root")
    host_key: Mapped[str] = mapped_column(String(2000))
    # Roles some installed plugin serves (provisioners.registry.installed().roles).
    roles: Mapped[list[str]] = mapped_column(default=list)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    enabled: Mapped[bool] = mapped_column(default=True)
    health: Mapped[str] = mapped_column(String(16), default=HostHealth.unknown)
    health_reason: Mapped[str | None] = mapped_column(String(2000), default=None)
    desired_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    applied_generation: Mapped[int] = mapped_column(BigInteger, default=0)
    # A lease, not a lock: a worker killed mid-reconcile frees the host when it expires.
    lease_owner: Mapped[str | None] = mapped_column(String(100), default=None)
    lease_until: Mapped[dt.datetime | None] = mapped_column(default=None)
    failures: Mapped[int] = mapped_column(default=0, server_default="0")
    retry_at: Mapped[dt.datetime | None] = mapped_column(default=None)


class ApplyResult(enum.StrEnum):
    running = "running"
    applied = "applied"
    noop = "noop"
    failed = "failed"


class Apply(Base):
    """One reconcile of one host: what it changed, how long it took, what it said."""

    __tablename__ = "applies"
    __table_args__ = (Index("ix_applies_host_id_id", "host_id", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"))
    generation: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[dt.datetime] = mapped_column(default=utcnow)
    finished_at: Mapped[dt.datetime | None] = mapped_column(default=None)
    result: Mapped[str] = mapped_column(String(16), default=ApplyResult.running, index=True)
    diff: Mapped[str] = mapped_column(Text, default="")
    log: Mapped[str] = mapped_column(Text, default="")
    error: Mapped[str | None] = mapped_column(Text, default=None)
    worker: Mapped[str | None] = mapped_column(String(100), default=None)
