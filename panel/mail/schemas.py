"""Mailbox and mail alias API shapes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import AliasAddress, Destination, MailAddress, Password


class MailboxCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    address: MailAddress
    password: Password = Field(json_schema_extra={"writeOnly": True})
    quota_mb: int = Field(default=1024, ge=1, le=1_048_576)
    enabled: bool = True


class MailboxUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    quota_mb: int | None = Field(default=None, ge=1, le=1_048_576)
    enabled: bool | None = None


class MailboxOut(BaseModel):
    """A mailbox; its password is never returned."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    address: str
    quota_mb: int
    enabled: bool
    host_id: int
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class MailAliasCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    address: AliasAddress = Field(description="name@domain, or @domain for the catch-all")
    destinations: list[Destination] = Field(min_length=1, max_length=50)

    _dedupe = field_validator("destinations")(_dedupe)


class MailAliasUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    destinations: list[Destination] = Field(min_length=1, max_length=50)

    _dedupe = field_validator("destinations")(_dedupe)


class MailAliasOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    address: str
    destinations: list[str]
    host_id: int
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
