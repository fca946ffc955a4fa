"""Mailing list API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
)

from panel.core.validation import ContactEmail, MailAddress, Text
from panel.lists.models import MemberRole, SubscriptionPolicy


def _dedupe(values: list[str]) -> list[str]:
    return list(dict.fromkeys(values))


def _header_text(value: str) -> str:
    """These texts reach mail headers (Subject, List-Id): one line (``Text`` refuses
    controls) and none of the characters that delimit addresses or quoted words."""
    if any(ch in '<>"\\' for ch in value):
        raise ValueError('must not contain <, >, " or \\ (the text goes into mail headers)')
    return value


ListName = Annotated[
    Text,
    AfterValidator(_header_text),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=100),
]
Description = Annotated[
    Text, AfterValidator(_header_text), StringConstraints(strip_whitespace=True, max_length=500)
]
SubjectPrefix = Annotated[Text, AfterValidator(_header_text), StringConstraints(max_length=40)]
MAX_IMPORT = 5000


class ListSettings(BaseModel):
    """What a list's own managers may change without a sysadmin; every field optional on
    write, and a missing one keeps its current value (or the list manager's default)."""

    model_config = ConfigDict(extra="forbid")

    display_name: ListName | None = Field(default=None, description="Shown in headers and pages")
    description: Description | None = None
    subject_prefix: SubjectPrefix | None = Field(
        default=None, description="Put in front of each post's subject, e.g. '[news] '"
    )
    archive_policy: Literal["never", "private", "public"] | None = Field(
        default=None, description="Whether posts are archived, and for whom"
    )
    max_message_size: int | None = Field(
        default=None, ge=0, le=20480, description="KB; larger posts are held (0: no limit)"
    )
    reply_to: Literal["sender", "list"] | None = Field(
        default=None, description="Where replies go: to the poster, or back to the list"
    )
    advertised: bool | None = Field(default=None, description="Listed in the list index")
    send_welcome_message: bool | None = None

    def merged(self, current: dict[str, Any]) -> dict[str, Any]:
        """``current`` with the fields given here (never an unset one) replacing its own."""
        return {**current, **self.model_dump(exclude_none=True)}


class ListCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    address: MailAddress
    owners: list[ContactEmail] = Field(min_length=1, max_length=20)
    policy: SubscriptionPolicy = Field(
        default=SubscriptionPolicy.confirm,
        description="open: anyone joins; confirm: the subscriber confirms by mail; "
        "moderate: the subscriber confirms, then a moderator approves",
    )
    settings: ListSettings = Field(default_factory=ListSettings)

    _dedupe = field_validator("owners")(_dedupe)


class ListUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    owners: list[ContactEmail] | None = Field(default=None, min_length=1, max_length=20)
    policy: SubscriptionPolicy | None = None
    settings: ListSettings | None = None


class ListOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    address: str
    owners: list[str]
    policy: str
    settings: dict[str, Any] = Field(description="Only the settings changed from the defaults")
    host_id: int
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: ContactEmail
    role: MemberRole = MemberRole.member


class MemberImport(BaseModel):
    """Many addresses at once (already consented: subscribed without a confirmation mail)."""

    model_config = ConfigDict(extra="forbid")

    emails: list[ContactEmail] = Field(min_length=1, max_length=MAX_IMPORT)
    role: MemberRole = MemberRole.member

    _dedupe = field_validator("emails")(_dedupe)


class MemberOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    list_id: int
    email: str
    role: str
    created_at: dt.datetime


class ImportOut(BaseModel):
    added: int
    already: int = Field(description="Addresses that were on the roster in that role already")
