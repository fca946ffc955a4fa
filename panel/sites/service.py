"""Sites: ownership of every name, placement on a web host, generation bumps."""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write, check_count_quota
from panel.core.auth import Principal
from panel.core.db import utcnow
from panel.core.errors import Conflict, Forbidden, Invalid
from panel.core.objects import apply_changes, mark_pending
from panel.core.outbox import outbox
from panel.core.secrets import seal
from panel.core.settings import Settings
from panel.domains.service import require_owned
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.sites import certs
from panel.sites.models import HttpsMode, Site, SiteAlias, SiteCertificate
from panel.sites.schemas import CertificateIn, SiteCreate, SiteUpdate

CUSTOM_FIRST = (
    "upload the certificate and key first (PUT /api/v1/sites/{id}/certificate); "
    "that also turns the mode to custom"
)


def names_taken(session: Session, names: list[str], except_site: int | None = None) -> list[str]:
    """Which of ``names`` another site already answers to (as its domain or an alias)."""
    taken_sites = select(Site.domain).where(Site.domain.in_(names))
    taken_aliases = select(SiteAlias.name).where(SiteAlias.name.in_(names))
    if except_site is not None:
        taken_sites = taken_sites.where(Site.id != except_site)
        taken_aliases = taken_aliases.where(SiteAlias.site_id != except_site)
    return sorted(set(session.scalars(taken_sites)) | set(session.scalars(taken_aliases)))


def _check_php(host: Host, php: str | None) -> None:
    versions = host.settings.get("php_versions")
    if php is not None and versions and php not in versions:
        raise Invalid("php", f"host {host.name} offers PHP {', '.join(versions)}; pick one of them")


def _aliases(session: Session, account_id: int, names: list[str]) -> list[SiteAlias]:
    return [
        SiteAlias(
            name=n,
            domain_id=require_owned(session, account_id, n.removeprefix("*."), f"aliases.{i}").id,
        )
        for i, n in enumerate(names)
    ]


def create_site(session: Session, principal: Principal, data: SiteCreate) -> Site:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(session, account, "sites", Site)
    domain = require_owned(session, account.id, data.domain, "domain")
    if data.domain in data.aliases:
        raise Invalid("aliases", "must not repeat the site's own domain")
    aliases = _aliases(session, account.id, data.aliases)
    taken = names_taken(session, [data.domain, *data.aliases])
    if taken:
        raise Conflict(f"Another site already answers to {', '.join(taken)}.")
    if data.host_id is not None:
        if not principal.is_staff:
            raise Forbidden("Only staff choose the host; leave host_id out to have one placed.")
        host = hosts.chosen_host(session, data.host_id, "web")
    else:
        host = hosts.place(session, "web", Site)
    _check_php(host, data.php)
    if data.https == HttpsMode.custom:
        raise Invalid("https", CUSTOM_FIRST)
    site = Site(
        account_id=account.id,
        domain_id=domain.id,
        host_id=host.id,
        domain=data.domain,
        document_root=data.document_root or f"www/{data.domain}",
        php=data.php,
        https=data.https,
        https_redirect=data.https_redirect,
        enabled=data.enabled,
        aliases=aliases,
    )
    session.add(site)
    session.flush()
    hosts.bump_generations(session, [host.id])
    return site


def update_site(session: Session, site: Site, data: SiteUpdate) -> dict[str, Any]:
    values = data.model_dump(exclude_unset=True, exclude={"aliases"})
    if "php" in data.model_fields_set:
        _check_php(session.get_one(Host, site.host_id), data.php)
    for name in ("document_root", "https", "https_redirect", "enabled"):
        if name in values and values[name] is None:
            raise Invalid(name, "must not be null")
    cert = session.get(SiteCertificate, site.id)
    uploaded = cert is not None and cert.source == HttpsMode.custom and bool(cert.chain_pem)
    if values.get("https") == HttpsMode.custom and site.https != HttpsMode.custom and not uploaded:
        raise Invalid("https", CUSTOM_FIRST)
    changes = apply_changes(site, values)
    if "https" in changes and site.https == HttpsMode.acme and cert is not None:
        cert.retry_at = None  # turned (back) to acme: order once the vhost is live
    if data.aliases is not None:
        old = [a.name for a in site.aliases]
        if old != data.aliases:
            if site.domain in data.aliases:
                raise Invalid("aliases", "must not repeat the site's own domain")
            new_names = [n for n in data.aliases if n not in old]
            taken = names_taken(session, new_names, except_site=site.id)
            if taken:
                raise Conflict(f"Another site already answers to {', '.join(taken)}.")
            keep = {a.name: a for a in site.aliases}
            fresh = _aliases(session, site.account_id, new_names)
            by_name = {**keep, **{a.name: a for a in fresh}}
            site.aliases = [by_name[n] for n in data.aliases]
            session.flush()
            changes["aliases"] = {"old": old, "new": list(data.aliases)}
            if cert is not None and cert.source == HttpsMode.acme:
                cert.renew_requested, cert.retry_at = True, None  # new names: a new order
    if changes:
        mark_pending(site)
        hosts.bump_generations(session, [site.host_id])
    return changes


def upload_certificate(
    session: Session, settings: Settings, site: Site, data: CertificateIn
) -> dict[str, Any]:
    """A member's certificate and key, checked, stored (the key sealed) and served: the
    site turns ``custom``.  Returns the audit changes (public facts only)."""
    names = [site.domain, *(a.name for a in site.aliases)]
    meta, chain_pem, key_pem = certs.check_upload(
        data.certificate, data.private_key.get_secret_value(), names, utcnow()
    )
    public = certs.public_der(certs.load_chain(chain_pem)[0].public_key())
    key_name = f"custom-{hashlib.sha256(public).hexdigest()[:16]}.key"
    row = session.get(SiteCertificate, site.id)
    if row is None:
        row = SiteCertificate(site_id=site.id)
        session.add(row)
    row.source, row.chain_pem, row.key_name = HttpsMode.custom.value, chain_pem, key_name
    row.key_sealed = seal(settings, key_pem)
    row.names, row.serial, row.issuer = list(meta.names), meta.serial, meta.issuer
    row.not_before, row.not_after, row.renew_at = meta.not_before, meta.not_after, None
    row.acme_state, row.reason, row.failures, row.retry_at = None, None, 0, None
    row.renew_requested = False
    changes: dict[str, Any] = {
        "certificate": {"new": {"serial": meta.serial, "not_after": meta.not_after.isoformat()}}
    }
    if site.https != HttpsMode.custom:
        changes["https"] = {"old": site.https, "new": HttpsMode.custom.value}
        site.https = HttpsMode.custom
    mark_pending(site)
    hosts.bump_generations(session, [site.host_id])
    return changes


def request_renewal(session: Session, site: Site) -> SiteCertificate:
    """Order a new ACME certificate now (the served one stays until it is issued)."""
    if site.https != HttpsMode.acme:
        raise Invalid("https", "only a site in mode acme renews its certificate by itself")
    row = session.get(SiteCertificate, site.id)
    if row is None:
        row = SiteCertificate(site_id=site.id, acme_state="pending")
        session.add(row)
    row.renew_requested, row.retry_at = True, None
    outbox(session).acme_hosts.add(site.host_id)
    return row
