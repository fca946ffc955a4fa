"""Host and apply API shapes."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import (
    HostAddress,
    HostKey,
    HostName,
    UnixName,
    host_key_fingerprint,
)
from panel.hosts.models import Apply, Host
from provisioners.registry import installed

if TYPE_CHECKING:

    class HostSettings(BaseModel):
        """Per-role settings (their fields come from the installed plugins)."""

else:
    # Built from the installed plugins' settings models; unknown keys are refused.
    HostSettings = installed().host_settings


def _known_role(value: str) -> str:
    roles = installed().roles
    if value not in roles:
        raise ValueError(f"must be a role an installed plugin serves: {', '.join(roles)}")
    return value


# A role some installed plugin serves (web, mail, db, lists, backup, and plugins' own).
RoleName = Annotated[str, AfterValidator(_known_role)]


def _roles(values: list[str]) -> list[str]:
    return sorted(set(values))


class HostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: HostName
    address: HostAddress
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: UnixName | Literal["root"] = "root"
    host_key: HostKey = Field(
        description="The host's public key line, pinned; never trusted on first use"
    )
    roles: list[RoleName] = Field(min_length=1, max_length=10)
    settings: HostSettings = Field(default_factory=HostSettings)
    enabled: bool = True

    _roles = field_validator("roles")(_roles)


class HostUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: HostAddress | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    ssh_user: UnixName | Literal["root"] | None = None
    host_key: HostKey | None = None
    roles: list[RoleName] | None = Field(default=None, min_length=1, max_length=10)
    settings: HostSettings | None = None
    enabled: bool | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, values: list[str] | None) -> list[str] | None:
        return None if values is None else _roles(values)


class HostOut(BaseModel):
    id: int
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    host_key: str
    host_key_fingerprint: str
    roles: list[str]
    settings: HostSettings
    enabled: bool
    health: str
    health_reason: str | None
    desired_generation: int
    applied_generation: int
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, host: Host) -> HostOut:
        return cls(
            id=host.id,
            name=host.name,
            address=host.address,
            ssh_port=host.ssh_port,
            ssh_user=host.ssh_user,
            host_key=host.host_key,
            host_key_fingerprint=host_key_fingerprint(host.host_key),
            roles=host.roles,
            settings=HostSettings.model_validate(host.settings),
            enabled=host.enabled,
            health=host.health,
            health_reason=host.health_reason,
            desired_generation=host.desired_generation,
            applied_generation=host.applied_generation,
            created_at=host.created_at,
            updated_at=host.updated_at,
        )


class ApplyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    host_id: int
    generation: int
    started_at: dt.datetime
    finished_at: dt.datetime | None
    result: str
    diff: str
    log: str
    error: str | None

    @classmethod
    def of(cls, apply: Apply) -> ApplyOut:
        return cls.model_validate(apply)


class PlanChange(BaseModel):
    path: str
    kind: str


class PlanOut(BaseModel):
    """What a reconcile would change now; differences nobody asked for are drift."""

    host_id: int
    noop: bool
    summary: str
    changes: list[PlanChange]
    steps: list[str]
    diff: str


class SshKeyOut(BaseModel):
    """The panel's public key: authorize it on a host before adding the host."""

    public_key: str
    fingerprint: str
