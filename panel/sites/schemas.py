"""Site API shapes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, field_validator

from panel.core.validation import DomainName, PhpVersion, RelPath
from panel.sites.models import HttpsMode, Site


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("contains the same name twice")
    return names


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    domain: DomainName
    aliases: list[DomainName] = Field(default_factory=list, max_length=50)
    host_id: int | None = Field(default=None, ge=1, description="Staff only; placed if absent")
    php: PhpVersion | None = Field(default=None, description="null for a static site")
    document_root: RelPath | None = Field(
        default=None, description="Relative to the account's home; default www/<domain>"
    )
    https: HttpsMode = HttpsMode.off
    enabled: bool = True

    _aliases_unique = field_validator("aliases")(_unique)


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aliases: list[DomainName] | None = Field(default=None, max_length=50)
    php: PhpVersion | None = None
    document_root: RelPath | None = None
    https: HttpsMode | None = None
    enabled: bool | None = None

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else _unique(names)


class SiteOut(BaseModel):
    id: int
    account_id: int
    domain: str
    aliases: list[str]
    host_id: int
    php: str | None
    document_root: str
    https: str
    enabled: bool
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, site: Site) -> SiteOut:
        return cls(
            id=site.id,
            account_id=site.account_id,
            domain=site.domain,
            aliases=[a.name for a in site.aliases],
            host_id=site.host_id,
            php=site.php,
            document_root=site.document_root,
            https=site.https,
            enabled=site.enabled,
            status=site.status,
            status_reason=site.status_reason,
            created_at=site.created_at,
            updated_at=site.updated_at,
        )
