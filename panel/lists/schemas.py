"""Mailing list API shapes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import ContactEmail, MailAddress
from panel.lists.models import SubscriptionPolicy


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


class ListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    address: MailAddress
    owners: list[ContactEmail] = Field(min_length=1, max_length=20)
    policy: SubscriptionPolicy = SubscriptionPolicy.confirm

    _dedupe = field_validator("owners")(_dedupe)


class ListUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owners: list[ContactEmail] | None = Field(default=None, min_length=1, max_length=20)
    policy: SubscriptionPolicy | None = None


class ListOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    address: str
    owners: list[str]
    policy: str
    host_id: int
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime
