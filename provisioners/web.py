"""Web hosts: accounts' unix users and directories, nginx or apache2 vhosts, PHP-FPM pools."""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    DesiredState,
    Facts,
    HostView,
    ManagedFile,
    Provisioner,
    SiteView,
    Step,
)
from provisioners.templating import render, static

WWW_ROOT = "/var/www/konbit"
LOG_DIR = "/var/log/konbit/web"
ARCHIVE_DIR = "/var/lib/konbit/archive/sites"
SUSPENDED_ROOT = f"{LIVE}/web/suspended"


def home(slug: str) -> str:
    return f"{WWW_ROOT}/{slug}"


def docroot(site: SiteView) -> str:
    return f"{home(site.account.slug)}/{site.document_root}"


def php_socket(slug: str, version: str) -> str:
    return f"/run/php/konbit-{slug}-{version}.sock"


def web_server(host: HostView) -> str:
    return str(host.settings.get("web_server", "nginx"))


def _site_values(site: SiteView) -> dict[str, object]:
    return {
        "site": site,
        "names": (site.domain, *site.aliases),
        "docroot": docroot(site),
        "log_dir": LOG_DIR,
        "suspended_root": SUSPENDED_ROOT,
        "php_socket": php_socket(site.account.slug, site.php) if site.php else "",
    }


class WebHome(Provisioner):
    """Each account's unix user, home and document roots; archives on delete."""

    name = "web"
    role = "web"

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return [ManagedFile("web/suspended/index.html", static("suspended.html"))]

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        steps: list[Step] = (
            [Step("log directory", ("install", "-d", "-m", "0755", LOG_DIR))]
            if not facts.sections.get("web", "").strip()
            else []
        )
        live = state.live_sites()
        for account in sorted({s.account for s in live}, key=lambda a: a.slug):
            if account.unix_user not in facts.users:
                steps.append(
                    Step(
                        f"unix user {account.unix_user}",
                        (
                            "sh",
                            "-c",
                            _ENSURE_USER,
                            "konbit",
                            account.unix_user,
                            home(account.slug),
                            f"Konbit account {account.slug}",
                        ),
                    )
                )
                # Group www-data reads (nginx); other accounts' users do not; setgid keeps it.
                steps.append(
                    Step(
                        f"home of {account.slug}",
                        (
                            "install",
                            "-d",
                            "-m",
                            "2750",
                            "-o",
                            account.unix_user,
                            "-g",
                            "www-data",
                            home(account.slug),
                        ),
                    )
                )
        for site in live:
            if any(p in changed for p in site_paths(site.id)):
                steps.append(
                    Step(
                        f"document root of {site.domain}",
                        (
                            "sh",
                            "-c",
                            _ENSURE_DOCROOT,
                            "konbit",
                            docroot(site),
                            site.account.unix_user,
                            site.domain,
                        ),
                        object_ids=(("site", site.id),),
                    )
                )
        for site in state.sites:
            if site.deleting:
                steps.append(
                    Step(
                        f"archive {site.domain}",
                        (
                            "sh",
                            "-c",
                            _ARCHIVE,
                            "konbit",
                            docroot(site),
                            f"{ARCHIVE_DIR}/{site.account.slug}/{site.domain}-site{site.id}",
                        ),
                        phase="after",
                        object_ids=(("site", site.id),),
                    )
                )
        return steps

    def fact_script(self) -> str:
        return f"[ -d {LOG_DIR} ] && echo logdir"


def site_paths(site_id: int) -> tuple[str, ...]:
    return (f"nginx/site-{site_id}.conf", f"apache2/site-{site_id}.conf")


# Idempotent even if the user appeared since the facts were read.
_ENSURE_USER = r"""
set -eu
id -u "$1" >/dev/null 2>&1 || useradd --home-dir "$2" --no-create-home \
    --shell /usr/sbin/nologin --user-group --comment "$3" -- "$1"
"""

# Creates the document root (and a first page) as the account's user; never follows a
# symlink the member may have planted, never overwrites their files.
_ENSURE_DOCROOT = r"""
set -eu
root="$1"; user="$2"; domain="$3"
install -d -m 2750 -o "$user" -g www-data "$root"
if [ -z "$(ls -A "$root")" ]; then
    printf '<!doctype html>\n<title>%s</title>\n<h1>%s</h1>\n<p>Hosted by Konbit.</p>\n' \
        "$domain" "$domain" > "$root/index.html"
    chown -h "$user:www-data" "$root/index.html"
    chmod 0640 "$root/index.html"
fi
"""

# Moves a deleted site's files aside (nothing is lost); idempotent when already moved.
_ARCHIVE = r"""
set -eu
src="$1"; dest="$2-$(date -u +%Y%m%dT%H%M%SZ)"
if [ -d "$src" ]; then
    mkdir -p "$(dirname "$dest")"
    chmod 0700 "$(dirname "$(dirname "$dest")")"
    mv -T -- "$src" "$dest"
fi
"""


class Nginx(Provisioner):
    """One server block per site, a shared log format, validated with ``nginx -t``."""

    name = "nginx"
    role = "web"

    def applies_to(self, host: HostView) -> bool:
        return super().applies_to(host) and web_server(host) == "nginx"

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        return [
            (
                "/etc/nginx/conf.d/konbit.conf",
                b"# Managed by Konbit.\ninclude /etc/konbit/live/nginx/*.conf;\n",
            )
        ]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        files = [ManagedFile("nginx/00-konbit.conf", render("nginx/konbit.conf.j2"))]
        files += [
            ManagedFile(f"nginx/site-{s.id}.conf", render("nginx/site.conf.j2", **_site_values(s)))
            for s in state.live_sites()
        ]
        return files

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["nginx", "-t", "-q"]]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if any(p.startswith(("nginx/", "web/")) for p in changed):
            return [["systemctl", "reload-or-restart", "nginx"]]
        return []


class Apache2(Provisioner):
    """The alternative web server: event MPM + proxy_fcgi, one VirtualHost per site."""

    name = "apache2"
    role = "web"

    def applies_to(self, host: HostView) -> bool:
        return super().applies_to(host) and web_server(host) == "apache2"

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        return [
            (
                "/etc/apache2/conf-enabled/zz-konbit.conf",
                b"# Managed by Konbit.\nIncludeOptional /etc/konbit/live/apache2/*.conf\n",
            )
        ]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        files = [ManagedFile("apache2/00-konbit.conf", render("apache2/konbit.conf.j2"))]
        files += [
            ManagedFile(
                f"apache2/site-{s.id}.conf", render("apache2/site.conf.j2", **_site_values(s))
            )
            for s in state.live_sites()
        ]
        return files

    def fact_script(self) -> str:
        return "a2query -m proxy_fcgi >/dev/null 2>&1 && echo proxy_fcgi; true"

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        if "proxy_fcgi" in facts.sections.get(self.name, ""):
            return []
        return [Step("apache2 modules", ("a2enmod", "-q", "proxy_fcgi", "setenvif"))]

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["apache2ctl", "-t"]]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if any(p.startswith(("apache2/", "web/")) for p in changed):
            return [["systemctl", "reload-or-restart", "apache2"]]
        return []


class PhpFpm(Provisioner):
    """One pool per account and PHP version, running as the account's user."""

    name = "php"
    role = "web"

    def versions(self, host: HostView) -> list[str]:
        return [str(v) for v in host.settings.get("php_versions", ["8.2"])]

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        return [
            (
                f"/etc/php/{v}/fpm/pool.d/zz-konbit.conf",
                f"; Managed by Konbit.\ninclude={LIVE}/php/{v}/*.conf\n".encode(),
            )
            for v in self.versions(host)
        ]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        pools = sorted(
            {(s.account, s.php) for s in state.live_sites() if s.php},
            key=lambda p: (p[0].slug, p[1] or ""),
        )
        # A placeholder per version: php-fpm refuses an include pattern that matches nothing.
        files = [
            ManagedFile(f"php/{v}/00-konbit.conf", b"; Managed by Konbit.\n")
            for v in self.versions(state.host)
        ]
        return files + [
            ManagedFile(
                f"php/{version}/{account.slug}.conf",
                render(
                    "php_fpm/pool.conf.j2",
                    account=account,
                    version=version,
                    socket=php_socket(account.slug, version),
                    home=home(account.slug),
                ),
            )
            for account, version in pools
            if version
        ]

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [[f"php-fpm{v}", "-t"] for v in self.versions(state.host)]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        return [
            ["systemctl", "reload-or-restart", f"php{v}-fpm"]
            for v in self.versions(state.host)
            if any(p.startswith(f"php/{v}/") for p in changed)
        ]
