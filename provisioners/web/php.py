"""PHP-FPM: one pool per account and PHP version, running as the account's user."""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    DesiredState,
    HostView,
    ManagedFile,
    Provisioner,
)
from provisioners.templating import render
from provisioners.web.common import (
    WebSettings,
    home,
    php_socket,
)


class PhpFpm(Provisioner):
    """One pool per account and PHP version, running as the account's user."""

    name = "php"
    roles = ("web",)
    settings = WebSettings

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
