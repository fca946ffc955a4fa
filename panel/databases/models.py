"""Databases, database users and the grants between them."""

from __future__ import annotations

import enum

from sqlalchemy import Column, ForeignKey, String, Table, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from panel.core.db import Base, Reconciled


class Engine(enum.StrEnum):
    mariadb = "mariadb"
    postgresql = "postgresql"


database_grants = Table(
    "database_grants",
    Base.metadata,
    Column("user_id", ForeignKey("database_users.id", ondelete="CASCADE"), primary_key=True),
    Column(
        "database_id", ForeignKey("databases.id", ondelete="CASCADE"), primary_key=True, index=True
    ),
)


class Database(Base, Reconciled):
    """A database on a db host, named ``<slug>_<suffix>``."""

    __tablename__ = "databases"
    __table_args__ = (UniqueConstraint("engine", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    engine: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(63))


class DatabaseUser(Base, Reconciled):
    """A database login; only engine-native password verifiers are stored, never the
    password: MariaDB's ``mysql_native_password`` hash and PostgreSQL's SCRAM-SHA-256."""

    __tablename__ = "database_users"
    __table_args__ = (UniqueConstraint("engine", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("accounts.id"), index=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id"), index=True)
    engine: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(63))
    password_hash: Mapped[str] = mapped_column(String(300))

    databases: Mapped[list[Database]] = relationship(
        secondary=database_grants, lazy="raise", order_by="Database.name"
    )
