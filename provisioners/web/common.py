"""What every web plugin shares: paths on a web host, settings, values of a site."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from provisioners.api import (
    KONBIT_ROOT,
    LIVE,
    DesiredState,
    Fact,
    Facts,
    HostView,
    ManagedFile,
    SiteView,
    lines,
)
from provisioners.api.values import PhpVersion
from provisioners.web.php_settings import site_settings

WWW_ROOT = "/var/www/konbit"
LOG_DIR = "/var/log/konbit/web"
ARCHIVE_DIR = "/var/lib/konbit/archive/sites"
SUSPENDED_ROOT = f"{LIVE}/web/suspended"
# HTTPS: challenges the panel writes for ACME HTTP-01 (served by every vhost on port 80),
# and each site's private keys, outside the generation tree (never in a diff or manifest).
ACME_ROOT = "/var/lib/konbit/acme-challenge"
PRIVATE_ROOT = f"{KONBIT_ROOT}/private"
# Mozilla's "intermediate" configuration: TLS 1.2 and 1.3, forward-secret AEAD suites (no
# DHE: it would need dhparams); TLS 1.3 suites are OpenSSL's defaults.
TLS_PROTOCOLS = "TLSv1.2 TLSv1.3"
TLS_CIPHERS = ":".join(
    (
        "ECDHE-ECDSA-AES128-GCM-SHA256",
        "ECDHE-RSA-AES128-GCM-SHA256",
        "ECDHE-ECDSA-AES256-GCM-SHA384",
        "ECDHE-RSA-AES256-GCM-SHA384",
        "ECDHE-ECDSA-CHACHA20-POLY1305",
        "ECDHE-RSA-CHACHA20-POLY1305",
    )
)


class WebSettings(BaseModel):
    """A web host's settings, shared by every web plugin."""

    web_server: Literal["nginx", "apache2"] = "nginx"
    php_versions: list[PhpVersion] = Field(default_factory=lambda: ["8.2"], max_length=10)
    web_quota: Literal["none", "btrfs"] = Field(
        default="none",
        description="web hosts: how accounts' disk quotas are enforced on their homes: "
        "'btrfs' makes each home a subvolume of the btrfs file system mounted on "
        f"{WWW_ROOT} (quotas enabled) with a qgroup limit; 'none' only measures them",
    )


def parse_quotas(text: str) -> dict[str, str]:
    """``btrfs qgroup show -re --raw`` rows as {subvolume name: max referenced or none}."""
    out: dict[str, str] = {}
    for line in text.splitlines():
        cols = line.split()
        if len(cols) >= 6 and cols[0].startswith("0/") and cols[0] != "0/5":
            out[cols[-1].rsplit("/", 1)[-1]] = cols[3]
    return out


# The homes that are btrfs subvolumes, with their limits (nothing where /var/www/konbit is
# not btrfs, or its quotas are off).
HOME_QUOTAS = Fact(
    "home_quotas",
    f"[ -d {WWW_ROOT} ] && command -v btrfs >/dev/null && "
    f"btrfs qgroup show -re --raw {WWW_ROOT} 2>/dev/null\ntrue",
    parse_quotas,
)


def home(slug: str) -> str:
    return f"{WWW_ROOT}/{slug}"


def docroot(site: SiteView) -> str:
    return f"{home(site.account.slug)}/{site.document_root}"


def key_dir(site_id: int) -> str:
    return f"{PRIVATE_ROOT}/site-{site_id}"


def cert_path(server: str, site_id: int) -> str:
    """The tree path of a site's certificate chain, in its web server's directory."""
    return f"{server}/tls/site-{site_id}.pem"


def php_socket(slug: str, version: str) -> str:
    return f"/run/php/konbit-{slug}-{version}.sock"


def site_socket(slug: str, site_id: int, version: str) -> str:
    """The socket of a site's own pool (a site with PHP settings).  ``_`` is in no slug, so
    no account's socket can take this name."""
    return f"/run/php/konbit-{slug}_site{site_id}-{version}.sock"


def site_sockets(state: DesiredState) -> dict[int, str]:
    """site id -> its own pool's socket, for the sites that have PHP settings; the others
    use their account's pool."""
    sites = {s.id: s for s in state.live_sites()}
    return {
        site_id: site_socket(sites[site_id].account.slug, site_id, str(sites[site_id].php))
        for site_id in site_settings(state)
    }


def web_server(host: HostView) -> str:
    return host.settings_as(WebSettings).web_server


# Directories set up once, and the private keys the host holds (``key site-7/x.key``).
WEB_DIRS = Fact(
    "web_dirs",
    f"[ -d {LOG_DIR} ] && [ -d {ACME_ROOT} ] && echo logdir\n"
    f"[ -d {PRIVATE_ROOT} ] && find {PRIVATE_ROOT} -mindepth 2 -maxdepth 2 "
    "-name '*.key' -printf 'key %P\\n'\n"
    "true",
    lines,
)


def site_values(site: SiteView, socket: str | None = None) -> dict[str, object]:
    """What a vhost template needs of a site; ``socket``: its own pool's, if it has one."""
    if site.php and socket is None:
        socket = php_socket(site.account.slug, site.php)
    return {
        "site": site,
        "names": (site.domain, *site.aliases),
        "docroot": docroot(site),
        "log_dir": LOG_DIR,
        "suspended_root": SUSPENDED_ROOT,
        "php_socket": socket if site.php else "",
    }


def vhost_values(site: SiteView, server: str, socket: str | None = None) -> dict[str, object]:
    """A site's values plus its TLS files, as ``server`` (nginx or apache2) reads them."""
    tls = site.tls
    return {
        **site_values(site, socket),
        "acme_root": ACME_ROOT,
        "tls": tls,
        "tls_chain": f"{LIVE}/{cert_path(server, site.id)}" if tls else "",
        "tls_key": f"{key_dir(site.id)}/{tls.key_name}" if tls else "",
        "tls_protocols": TLS_PROTOCOLS,
        "tls_ciphers": TLS_CIPHERS,
    }


def tls_files(server: str, state: DesiredState) -> list[ManagedFile]:
    """Each served certificate chain (public) as a file of the tree."""
    return [
        ManagedFile(cert_path(server, s.id), s.tls.chain_pem.encode())
        for s in state.live_sites()
        if s.tls is not None
    ]


def host_keys(facts: Facts) -> set[str]:
    """``site-<id>/<name>`` of every private key the host holds."""
    return {line[4:].strip() for line in facts[WEB_DIRS] if line.startswith("key ")}


def access_log(site_id: int) -> str:
    return f"{LOG_DIR}/site-{site_id}.access.log"


def site_paths(site_id: int) -> tuple[str, ...]:
    return (f"nginx/site-{site_id}.conf", f"apache2/site-{site_id}.conf")


# Moves a deleted site's files aside (nothing is lost); idempotent when already moved.
ARCHIVE = r"""
set -eu
src="$1"; dest="$2-$(date -u +%Y%m%dT%H%M%SZ)"
if [ -d "$src" ]; then
    mkdir -p "$(dirname "$dest")"
    chmod 0700 "$(dirname "$(dirname "$dest")")"
    mv -T -- "$src" "$dest"
fi
"""
