"""Account, user, membership and token API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from panel.accounts.models import AccountStatus, Role
from panel.core.auth import check_scope
from panel.core.validation import ContactEmail, DisplayName, Password, Slug
from provisioners.registry import installed

QuotaValue = Annotated[int, Field(ge=0, le=10_000_000)]
# The panel's own quotas, and one count per kind the installed plugins have it store.
QUOTA_KEYS = {"sites", "mailboxes", "lists", "databases", "disk_mb", "mail_mb"} | {
    k.name for k in installed().stored()
}


def _known_quotas(value: dict[str, int] | None) -> dict[str, int] | None:
    if value is not None:
        unknown = sorted(set(value) - QUOTA_KEYS)
        if unknown:
            raise ValueError(
                f"unknown quota {', '.join(unknown)}; known: {', '.join(sorted(QUOTA_KEYS))}"
            )
    return value


class AccountCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slug: Slug
    name: DisplayName
    email: ContactEmail
    quotas: dict[str, QuotaValue] = Field(default_factory=dict)

    _quotas = field_validator("quotas")(_known_quotas)


class AccountUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DisplayName | None = None
    email: ContactEmail | None = None
    quotas: dict[str, QuotaValue] | None = Field(default=None, description="Staff only")
    status: AccountStatus | None = Field(default=None, description="Staff only")

    _quotas = field_validator("quotas")(_known_quotas)


class AccountOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    slug: str
    name: str
    email: str
    status: str
    quotas: dict[str, int]
    created_at: dt.datetime
    updated_at: dt.datetime


class UserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: ContactEmail
    name: DisplayName | None = None
    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    is_staff: bool = False


class UserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DisplayName | None = None
    password: Password | None = Field(default=None, json_schema_extra={"writeOnly": True})
    current_password: str | None = Field(
        default=None,
        max_length=1024,
        description="Needed to change your own password",
        json_schema_extra={"writeOnly": True},
    )
    is_staff: bool | None = Field(default=None, description="Staff only")
    is_active: bool | None = Field(default=None, description="Staff only")


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    email: str
    name: str
    is_staff: bool
    is_active: bool
    created_at: dt.datetime


class MembershipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: ContactEmail = Field(description="An existing user's email")
    role: Role


class MembershipUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Role


class MembershipOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    account_id: int
    user_id: int
    email: str
    role: str
    created_at: dt.datetime


Scope = Annotated[str, AfterValidator(check_scope)]


class TokenCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: DisplayName = Field(max_length=100)
    scopes: list[Scope] = Field(min_length=1, max_length=20)
    expires_at: dt.datetime | None = None
    user_id: int | None = Field(default=None, ge=1, description="Staff only; default yourself")

    @field_validator("expires_at")
    @classmethod
    def _aware(cls, value: dt.datetime | None) -> dt.datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("must include a timezone, e.g. 2027-01-01T00:00:00Z")
        return value


class TokenOut(BaseModel):
    """A token as listed: never its secret."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    user_id: int
    name: str
    prefix: str
    scopes: list[str]
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None


class TokenCreated(TokenOut):
    """Returned once, at creation: ``token`` is the only copy of the secret."""

    token: str
