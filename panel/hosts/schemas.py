"""Host and apply API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import (
    HostAddress,
    HostKey,
    HostName,
    PhpVersion,
    UnixName,
    host_key_fingerprint,
)
from panel.databases.models import Engine
from panel.hosts.models import Apply, Host, HostRole


class HostSettings(BaseModel):
    """Per-role settings; unknown keys are refused so a typo is not silently ignored."""

    model_config = ConfigDict(extra="forbid")

    web_server: Literal["nginx", "apache2"] = "nginx"
    php_versions: list[PhpVersion] = Field(default_factory=lambda: ["8.2"], max_length=10)
    engines: list[Engine] = Field(default_factory=lambda: [Engine.mariadb, Engine.postgresql])
    relay_host: HostAddress | None = Field(
        default=None,
        description="lists hosts: the smarthost (port 25) that carries list mail out; "
        "none means direct delivery by MX",
    )


def _roles(values: list[HostRole]) -> list[HostRole]:
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
    roles: list[HostRole] = Field(min_length=1, max_length=5)
    settings: HostSettings = Field(default_factory=HostSettings)
    enabled: bool = True

    _roles = field_validator("roles")(_roles)


class HostUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    address: HostAddress | None = None
    ssh_port: int | None = Field(default=None, ge=1, le=65535)
    ssh_user: UnixName | Literal["root"] | None = None
    host_key: HostKey | None = None
    roles: list[HostRole] | None = Field(default=None, min_length=1, max_length=5)
    settings: HostSettings | None = None
    enabled: bool | None = None

    @field_validator("roles")
    @classmethod
    def _roles(cls, values: list[HostRole] | None) -> list[HostRole] | None:
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
