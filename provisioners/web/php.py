"""PHP-FPM: one pool per account and PHP version, running as the account's user; a site
with PHP settings gets a pool of its own.

Per-site settings cannot live in a pool several sites share, and ``fastcgi_param
PHP_VALUE`` would leak from one request to the next in the same worker: so a site with
settings runs in its own pool (same user, same ``open_basedir``, its own socket), and its
vhost points there.  The account's pool stays for its other sites, and as the fallback.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    PLATFORMS_ROOT,
    DesiredState,
    HostView,
    ManagedFile,
    ObjectRef,
    Provisioner,
)
from provisioners.templating import render
from provisioners.web.common import (
    WebSettings,
    home,
    php_socket,
    site_socket,
)
from provisioners.web.php_settings import KIND, PHP_SETTINGS, pool_lines, site_settings

# A site's own pool, named after its settings object (``_`` is in no account slug, so no
# account's pool file can take this name).
SETTINGS_FILE = re.compile(r"php/[0-9]\.[0-9]/php_settings-(\d+)\.conf")


GLOBAL_FPM = b"; Managed by Konbit.\n[global]\nprocess_control_timeout = 10s\n"


class PhpFpm(Provisioner):
    """One pool per account and PHP version, and one per site with PHP settings."""

    name = "php"
    roles = ("web",)
    reload_rank = 10  # new pools listen before the vhosts that use them are reloaded
    messages = {
        "fr": {
            "PHP settings": "réglages PHP",
            "Memory limit": "Limite de mémoire",
            "memory one request may use, 16M..1024M (PHP's default: 128M)": "mémoire qu'une "
            "requête peut utiliser, 16M..1024M (par défaut dans PHP : 128M)",
            "Upload max filesize": "Taille maximale d'un fichier envoyé",
            "largest uploaded file, 1M..512M (default 2M)": "plus gros fichier envoyé, "
            "1M..512M (par défaut 2M)",
            "Post max size": "Taille maximale d'une requête",
            "largest request body, 1M..512M, at least upload_max_filesize (default 8M)": "plus "
            "gros corps de requête, 1M..512M, au moins upload_max_filesize (par défaut 8M)",
            "Max file uploads": "Fichiers envoyés au plus",
            "files in one request (default 20)": "fichiers dans une requête (par défaut 20)",
            "Max execution time": "Durée d'exécution maximale",
            "seconds of run time, 1..600 (default 30)": "secondes d'exécution, 1..600 (par "
            "défaut 30)",
            "Max input time": "Durée maximale de lecture",
            "seconds to read the request, 1..600 (default: no limit of its own)": "secondes "
            "pour lire la requête, 1..600 (par défaut : pas de limite propre)",
            "Max input vars": "Variables d'entrée au plus",
            "input variables, 1000..100000": "variables d'entrée, 1000..100000",
            "Display errors": "Afficher les erreurs",
            "show errors in pages (default off on Debian)": "montrer les erreurs dans les "
            "pages (désactivé par défaut sur Debian)",
            "Short open tag": "Balise courte",
            "accept '<?' (default off)": "accepter « <? » (désactivé par défaut)",
            "Allow url fopen": "Ouvrir des URL comme des fichiers",
            "let file functions open URLs (default on)": "les fonctions de fichiers peuvent "
            "ouvrir des URL (activé par défaut)",
            "Date timezone": "Fuseau horaire",
            "date.timezone, e.g. 'Europe/Paris' (default UTC)": "date.timezone, par exemple "
            "« Europe/Paris » (par défaut UTC)",
            "Session gc maxlifetime": "Durée de vie des sessions",
            "session.gc_maxlifetime in seconds, 60..604800 (default 1440)": "session."
            "gc_maxlifetime en secondes, 60..604800 (par défaut 1440)",
        }
    }
    settings = WebSettings
    kinds = (PHP_SETTINGS,)

    def versions(self, host: HostView) -> list[str]:
        return list(host.settings_as(WebSettings).php_versions)

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
        # First per version (php-fpm refuses an include pattern that matches nothing): a
        # reload lets requests in flight finish (up to 10 s) instead of cutting them (502s
        # for every site of the host at each switch of a platform or change of a pool).
        files = [
            ManagedFile(f"php/{v}/00-konbit.conf", GLOBAL_FPM) for v in self.versions(state.host)
        ]
        files += [
            ManagedFile(
                f"php/{version}/{account.slug}.conf",
                render(
                    "php_fpm/pool.conf.j2",
                    account=account,
                    version=version,
                    pool=f"konbit-{account.slug}",
                    socket=php_socket(account.slug, version),
                    home=home(account.slug),
                    site=None,
                    settings=[],
                    platforms=PLATFORMS_ROOT,
                ),
            )
            for account, version in pools
            if version
        ]
        settings = site_settings(state)
        for site in state.live_sites():
            item = settings.get(site.id)
            if item is None or not site.php:
                continue
            slug = site.account.slug
            files.append(
                ManagedFile(
                    f"php/{site.php}/{KIND}-{item.id}.conf",
                    render(
                        "php_fpm/pool.conf.j2",
                        account=site.account,
                        version=site.php,
                        pool=f"konbit-{slug}_site{site.id}",
                        socket=site_socket(slug, site.id, site.php),
                        home=home(slug),
                        site=site,
                        settings=pool_lines(item.spec),
                        platforms=PLATFORMS_ROOT,
                    ),
                )
            )
        return files

    def object_of(self, path: str) -> ObjectRef | None:
        m = SETTINGS_FILE.fullmatch(path)
        return (KIND, int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {(KIND, int(i)) for i in SETTINGS_FILE.findall(message)}

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        # The staged tree's php/<v>/*.conf, site pools included, through the include line.
        return [[f"php-fpm{v}", "-t"] for v in self.versions(state.host)]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        return [
            ["systemctl", "reload-or-restart", f"php{v}-fpm"]
            for v in self.versions(state.host)
            if any(p.startswith(f"php/{v}/") for p in changed)
        ]
