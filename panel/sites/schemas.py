"""Site API shapes."""

from __future__ import annotations

import datetime as dt

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from panel.core.validation import AliasName, DomainName, PhpVersion, RelPath
from panel.sites.models import HttpsMode, Site, SiteCertificate


def _unique(names: list[str]) -> list[str]:
    if len(set(names)) != len(names):
        raise ValueError("contains the same name twice")
    return names


class SiteCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    account_id: int = Field(ge=1)
    domain: DomainName
    aliases: list[AliasName] = Field(default_factory=list, max_length=50)
    host_id: int | None = Field(default=None, ge=1, description="Staff only; placed if absent")
    php: PhpVersion | None = Field(default=None, description="null for a static site")
    document_root: RelPath | None = Field(
        default=None, description="Relative to the account's home; default www/<domain>"
    )
    https: HttpsMode = HttpsMode.off
    https_redirect: bool = Field(default=True, description="Send HTTP to HTTPS once served")
    enabled: bool = True

    _aliases_unique = field_validator("aliases")(_unique)


class SiteUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    aliases: list[AliasName] | None = Field(default=None, max_length=50)
    php: PhpVersion | None = None
    document_root: RelPath | None = None
    https: HttpsMode | None = None
    https_redirect: bool | None = None
    enabled: bool | None = None

    @field_validator("aliases")
    @classmethod
    def _aliases_unique(cls, names: list[str] | None) -> list[str] | None:
        return None if names is None else _unique(names)


class CertificateIn(BaseModel):
    """A member's own certificate: the chain in PEM (the site's certificate first, then
    each issuer) and its unencrypted private key in PEM."""

    model_config = ConfigDict(extra="forbid")

    certificate: str = Field(min_length=1, max_length=65_536)
    private_key: SecretStr = Field(min_length=1, max_length=16_384)


class CertificateOut(BaseModel):
    """The certificate a site serves (public; the private key is never shown)."""

    source: str  # "acme" or "custom"
    serial: str | None
    issuer: str | None
    names: list[str]
    not_before: dt.datetime | None
    not_after: dt.datetime | None
    renew_at: dt.datetime | None

    @classmethod
    def of(cls, row: SiteCertificate) -> CertificateOut:
        return cls(
            source=row.source or "",
            serial=row.serial,
            issuer=row.issuer,
            names=list(row.names or []),
            not_before=row.not_before,
            not_after=row.not_after,
            renew_at=row.renew_at if row.source == HttpsMode.acme else None,
        )


class SiteCertificateOut(BaseModel):
    """``/sites/{id}/certificate``: the HTTPS state and the served chain in PEM."""

    site_id: int
    https: str
    https_status: str
    https_reason: str | None
    certificate: CertificateOut | None
    chain: str | None = Field(description="PEM, the site's certificate first")


def https_state(
    mode: str, row: SiteCertificate | None
) -> tuple[str, str | None, CertificateOut | None]:
    """``https_status`` (off, pending, active, failed), its reason, and the certificate."""
    cert = CertificateOut.of(row) if row is not None and row.chain_pem else None
    if mode == HttpsMode.off:
        return "off", None, cert
    if mode == HttpsMode.acme and row is not None and row.acme_state == "failed":
        return "failed", row.reason, cert
    if cert is None:
        reason = "waiting for the site to be live, then for the ACME order"
        return "pending", reason if mode == HttpsMode.acme else None, None
    if mode == HttpsMode.acme and cert.source != HttpsMode.acme:
        return "pending", "serving the uploaded certificate until the ACME one is issued", cert
    return "active", None, cert


class SiteOut(BaseModel):
    id: int
    account_id: int
    domain: str
    aliases: list[str]
    host_id: int
    php: str | None
    document_root: str
    https: str
    https_redirect: bool
    https_status: str = Field(description="off, pending, active or failed (see https_reason)")
    https_reason: str | None
    certificate: CertificateOut | None
    enabled: bool
    status: str
    status_reason: str | None
    created_at: dt.datetime
    updated_at: dt.datetime

    @classmethod
    def of(cls, site: Site, cert: SiteCertificate | None = None) -> SiteOut:
        https_status, https_reason, certificate = https_state(site.https, cert)
        return cls(
            id=site.id,
            account_id=site.account_id,
            domain=site.domain,
            aliases=[a.name for a in site.aliases],
            host_id=site.host_id,
            php=site.php,
            document_root=site.document_root,
            https=site.https,
            https_redirect=site.https_redirect,
            https_status=https_status,
            https_reason=https_reason,
            certificate=certificate,
            enabled=site.enabled,
            status=site.status,
            status_reason=site.status_reason,
            created_at=site.created_at,
            updated_at=site.updated_at,
        )
