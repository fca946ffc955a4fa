"""Database and database user API shapes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import DbName, Password
from panel.databases.models import Database, DatabaseUser, Engine


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class DatabaseCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    name: DbName = Field(description="'<slug>_<suffix>', suffix of lowercase letters/digits")
    engine: Engine = Engine.mariadb


class DatabaseOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    name: str
    engine: str
    host_id: int
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, db: Database) -> DatabaseOut:
        return cls.model_validate(db)


class DatabaseUserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    name: DbName
    password: Password = Field(json_schema_extra={"writeOnly": True})
    databases: list[DbName] = Field(default_factory=list, max_length=100)
    engine: Engine | None = Field(default=None, description="Taken from the databases if absent")

    _dedupe = field_validator("databases")(_dedupe)


class DatabaseUserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    databases: list[DbName] | None = Field(default=None, max_length=100)


class DatabaseUserOut(BaseModel):
    id: int
    account_id: int
    name: str
    engine: str
    host_id: int
    databases: list[str]
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, user: DatabaseUser) -> DatabaseUserOut:
        return cls(
            id=user.id,
            account_id=user.account_id,
            name=user.name,
            engine=user.engine,
            host_id=user.host_id,
            databases=[d.name for d in user.databases],
            status=user.status,
            status_reason=user.status_reason,
            created_at=user.created_at,
            updated_at=user.updated_at,
        )
