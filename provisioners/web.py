"""Web hosts: accounts' unix users and directories, nginx or apache2 vhosts, PHP-FPM pools."""

from __future__ import annotations

import re
from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    DesiredState,
    Facts,
    HostView,
    ManagedFile,
    ObjectRef,
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
        """Batched: all new users in one ``newusers``, one step per account for its dirs."""
        steps: list[Step] = []
        if not facts.sections.get("web", "").strip():
            steps.append(
                Step("log and web directories", ("install", "-d", "-m", "0755", LOG_DIR, WWW_ROOT))
            )
        live = state.live_sites()
        accounts = sorted({s.account for s in live}, key=lambda a: a.slug)
        new_users = [a for a in accounts if a.unix_user not in facts.users]
        if new_users:
            args = [x for a in new_users for x in (a.unix_user, home(a.slug))]
            steps.append(
                Step(
                    f"unix users {', '.join(a.unix_user for a in new_users)}",
                    ("sh", "-c", _NEW_USERS, "konbit", *args),
                )
            )
        # One perl process for every account's home and document roots (perl-base is
        # Essential on Debian): owned by the account, group www-data (nginx reads, other
        # accounts do not), setgid so it stays so; a first page where there is none.
        spec: list[str] = []
        blamed: list[tuple[str, int]] = []
        for account in accounts:
            sites = [
                s
                for s in live
                if s.account == account and any(p in changed for p in site_paths(s.id))
            ]
            if not sites and account not in new_users:
                continue
            dirs = {home(account.slug)}
            for site in sites:
                parts = site.document_root.split("/")
                dirs.update(
                    f"{home(account.slug)}/{'/'.join(parts[:i])}" for i in range(1, len(parts) + 1)
                )
            spec += ["U", account.unix_user]
            for d in sorted(dirs, key=lambda d: (d.count("/"), d)):
                spec += ["D", d]
            for site in sites:
                spec += ["P", docroot(site), site.domain]
                blamed.append(("site", site.id))
        if spec:
            steps.append(
                Step(
                    "home and document roots",
                    ("perl", "-e", _ENSURE_DIRS, "--", *spec),
                    object_ids=tuple(blamed),
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


_SITE_FILE = re.compile(r"(?:nginx|apache2)/site-(\d+)\.conf")


class _Vhosts(Provisioner):
    """What nginx and apache2 share: one vhost file per site, named after its id."""

    def object_of(self, path: str) -> ObjectRef | None:
        m = _SITE_FILE.fullmatch(path)
        return ("site", int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("site", int(i)) for i in _SITE_FILE.findall(message)}


# All missing users in one process (newusers allocates ids, creates each user's group and
# home); a locked password and a shell that refuses logins.
_NEW_USERS = r"""
set -eu
while [ $# -ge 2 ]; do
    if ! id -u "$1" >/dev/null 2>&1; then
        printf '%s::::Konbit account:%s:/usr/sbin/nologin\n' "$1" "$2"
    fi
    shift 2
done > /run/konbit-newusers
# An empty password field leaves the password locked ("!") and skips PAM's hashing (6.6 s
# for 200 users with one); PAM then complains and newusers exits 1 although every user was
# made, so success is judged by /etc/passwd itself.
if [ -s /run/konbit-newusers ]; then
    newusers /run/konbit-newusers 2>/run/konbit-newusers.err || true
    if ! awk -F: 'NR == FNR { want[$1] = 1; next } { delete want[$1] }
                  END { bad = 0; for (u in want) { print "not created: " u; bad = 1 }; exit bad }' \
            /run/konbit-newusers /etc/passwd >&2; then
        cat /run/konbit-newusers.err >&2
        exit 1
    fi
fi
rm -f /run/konbit-newusers /run/konbit-newusers.err
"""

# Never follows a symlink a member planted; never overwrites a member's page.
_ENSURE_DIRS = r"""
use strict;
my $www = getgrnam("www-data");
defined $www or die "no www-data group\n";
my ($uid, $user);
while (@ARGV) {
    my $t = shift @ARGV;
    if ($t eq "U") {
        $user = shift @ARGV;
        $uid = getpwnam($user);
        defined $uid or die "no unix user $user\n";
    } elsif ($t eq "D") {
        my $d = shift @ARGV;
        if (-l $d) { warn "$d is a symlink; left alone\n"; next; }
        if (!-d $d) { mkdir($d) or die "mkdir $d: $!\n"; }
        chown($uid, $www, $d) or die "chown $d: $!\n";
        chmod(02750, $d) or die "chmod $d: $!\n";
    } elsif ($t eq "P") {
        my ($d, $domain) = splice(@ARGV, 0, 2);
        my $f = "$d/index.html";
        next if -l $d || -e $f || -l $f || -e "$d/index.php";
        open(my $fh, ">", $f) or die "$f: $!\n";
        print $fh "<!doctype html>\n<title>$domain</title>\n<h1>$domain</h1>\n"
            . "<p>Hosted by Konbit.</p>\n";
        close($fh) or die "$f: $!\n";
        chown($uid, $www, $f) or die "chown $f: $!\n";
        chmod(0640, $f) or die "chmod $f: $!\n";
    }
}
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


class Nginx(_Vhosts):
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
        names = sum(1 + len(s.aliases) for s in state.live_sites())
        hash_max = max(512, 1 << (2 * names).bit_length())
        files = [
            ManagedFile(
                "nginx/00-konbit.conf",
                render("nginx/konbit.conf.j2", hash_max=hash_max, log_dir=LOG_DIR),
            )
        ]
        files += [
            ManagedFile(f"nginx/site-{s.id}.conf", render("nginx/site.conf.j2", **_site_values(s)))
            for s in state.live_sites()
        ]
        return files

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        # One access log per site is one descriptor per site: lift the session's soft limit.
        return [["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec nginx -t -q']]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if any(p.startswith(("nginx/", "web/")) for p in changed):
            return [["systemctl", "reload-or-restart", "nginx"]]
        return []


class Apache2(_Vhosts):
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
