"""API shapes of plugin objects: the spec is the plugin's own model, checked by kind."""

from __future__ import annotations

import datetime as dt
import re
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import check_text

_NAME = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_object_name(value: str) -> str:
    check_text(value)
    if not _NAME.fullmatch(value):
        raise ValueError(
            "must be 1 to 63 lower-case letters, digits and '-', not starting or ending with '-'"
        )
    return value


ObjectName = Annotated[str, AfterValidator(check_object_name)]


class ObjectCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int
    name: ObjectName
    host_id: int | None = Field(
        default=None, description="a host of the kind's role; placed automatically when unset"
    )
    site_id: int | None = Field(
        default=None, description="the account's site it belongs to (kinds attached to a site)"
    )
    spec: dict[str, Any] = Field(default_factory=dict, description="the kind's own fields")


class ObjectUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    spec: dict[str, Any] = Field(
        description="merged into the current spec (RFC 7396): keys given replace, null removes"
    )


def without_secrets(spec: dict[str, Any]) -> dict[str, Any]:
    """A spec as the API shows it: hashes of secrets (``*_hash``) never leave the panel."""
    return {k: v for k, v in spec.items() if not k.endswith("_hash")}


class ObjectOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    kind: str
    account_id: int
    host_id: int | None
    site_id: int | None
    name: str
    spec: dict[str, Any]
    status: str
    status_reason: str | None
    version: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @field_validator("spec")
    @classmethod
    def _hide_secrets(cls, spec: dict[str, Any]) -> dict[str, Any]:
        return without_secrets(spec)
