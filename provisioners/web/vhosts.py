"""nginx or apache2: one vhost per site, validated by the server's own checker."""

from __future__ import annotations

import re
from collections.abc import Sequence

from provisioners.api import (
    LIVE,
    DesiredState,
    Fact,
    Facts,
    HostView,
    ManagedFile,
    ObjectRef,
    Provisioner,
    Step,
)
from provisioners.templating import render
from provisioners.web.common import (
    ACME_ROOT,
    LOG_DIR,
    TLS_CIPHERS,
    WebSettings,
    site_sockets,
    tls_files,
    vhost_values,
    web_server,
)

SITE_FILE = re.compile(r"(?:nginx|apache2)/(?:tls/)?site-(\d+)\.(?:conf|pem)")


class _Vhosts(Provisioner):
    """What nginx and apache2 share: one vhost file per site, named after its id."""

    roles = ("web",)
    settings = WebSettings

    def object_of(self, path: str) -> ObjectRef | None:
        m = SITE_FILE.fullmatch(path)
        return ("site", int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("site", int(i)) for i in SITE_FILE.findall(message)}


NGINX_MAIN_INCLUDE = "/etc/nginx/modules-enabled/zz-konbit.conf"
NGINX_SYSTEMD_DROPIN = "/etc/systemd/system/nginx.service.d/konbit.conf"
# The master's limit on a production host (systemd's default hard limit for services on
# Debian 12); systemd sets the closest value a container allows.
NGINX_NOFILE = 524_288


def master_nofile(sites: int) -> int:
    """What the nginx master needs: every access log twice during a reload (the new
    configuration's files open before the old ones close), plus its own few."""
    return 2 * sites + 256


def worker_nofile(sites: int) -> int:
    """A worker: every access log, its connections (2 per proxied request) and slack,
    rounded up to a power of two so the file changes rarely."""
    return 1 << (sites + 4096).bit_length()


_NGINX_DROPIN = f"""# Managed by Konbit: the nginx master opens every site's access log, on start
# and on each reload (the old and the new configuration's at once).
[Service]
LimitNOFILE={NGINX_NOFILE}
""".encode()

# What the running master may open, and what a restart from this session could give it.
_NGINX_FACTS = r"""
grep -qs '^# Managed by Konbit' /etc/default/nginx && echo default-ulimit
pid="$(cat /run/nginx.pid 2>/dev/null)" && [ -n "$pid" ] &&
    awk '/^Max open files/ { print "master-nofile", $4 }' "/proc/$pid/limits" 2>/dev/null
echo "hard-nofile $(ulimit -Hn)"
"""

# For the Debian init script (hosts without systemd), which sources /etc/default/nginx
# before start, reload and its own nginx -t: as high as this host allows.  Then systemd
# reads the drop-in (written as a bootstrap file before this runs).
_NGINX_LIMITS = rf"""
set -eu
if ! grep -qs '^# Managed by Konbit' /etc/default/nginx; then
    cat >> /etc/default/nginx <<'END'
# Managed by Konbit: nginx opens one access log per site (twice during a reload).
ULIMIT="-n {NGINX_NOFILE}"
(ulimit $ULIMIT) 2>/dev/null || ULIMIT="-n $(ulimit -Hn)"
END
fi
if [ -d /run/systemd/system ]; then systemctl daemon-reload; fi
"""


def _key_values(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        out[key] = value.strip()
    return out


NGINX_LIMITS = Fact("nginx_limits", _NGINX_FACTS, _key_values)


# A reload is a HUP: it "succeeds" even when the master then fails to load the new
# configuration (out of descriptors, say) and keeps the old one running. Wait until new
# workers exist; fail with the master's own message otherwise, so the engine rolls back.
_NGINX_RELOAD = r"""
set -u
master="$(cat /run/nginx.pid 2>/dev/null || true)"
if [ -z "$master" ] || ! kill -0 "$master" 2>/dev/null; then
    exec systemctl reload-or-restart nginx
fi
log=/var/log/nginx/error.log
size="$(stat -c %s "$log" 2>/dev/null || echo 0)"
before=" $(ps -o pid= --ppid "$master" | tr -s ' \n' ' ') "
# The HUP itself (what `nginx -s reload` sends): the configuration was validated already,
# and an init script's reload would parse it once more first.
kill -HUP "$master" || exit $?
i=0
while [ "$i" -lt 1000 ]; do
    for p in $(ps -o pid= --ppid "$master"); do
        case "$before" in *" $p "*) ;; *) exit 0 ;; esac
    done
    if tail -c "+$((size + 1))" "$log" 2>/dev/null | grep -q '\[emerg\]\|\[alert\]'; then
        break
    fi
    sleep 0.01
    i=$((i + 1))
done
echo "nginx kept its previous configuration:" >&2
tail -c "+$((size + 1))" "$log" 2>/dev/null | tail -n 5 >&2
exit 1
"""


class Nginx(_Vhosts):
    """One server block per site, a shared log format, validated with ``nginx -t``."""

    name = "nginx"
    facts = (NGINX_LIMITS,)

    def applies_to(self, host: HostView) -> bool:
        return super().applies_to(host) and web_server(host) == "nginx"

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        return [
            (
                "/etc/nginx/conf.d/konbit.conf",
                b"# Managed by Konbit.\ninclude /etc/konbit/live/nginx/*.conf;\n",
            ),
            # Debian's nginx.conf includes modules-enabled/ in the main context, where
            # worker_rlimit_nofile lives (conf.d/ is inside http {}).
            (
                NGINX_MAIN_INCLUDE,
                f"# Managed by Konbit.\ninclude {LIVE}/nginx/main/*.conf;\n".encode(),
            ),
            (NGINX_SYSTEMD_DROPIN, _NGINX_DROPIN),
        ]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        live = state.live_sites()
        names = sum(1 + len(s.aliases) for s in live)
        hash_max = max(512, 1 << (2 * names).bit_length())
        files = [
            ManagedFile(
                "nginx/00-konbit.conf",
                render("nginx/konbit.conf.j2", hash_max=hash_max, log_dir=LOG_DIR),
            ),
            ManagedFile(
                "nginx/main/limits.conf",
                render("nginx/main.conf.j2", sites=len(live), nofile=worker_nofile(len(live))),
            ),
        ]
        sockets = site_sockets(state)
        files += [
            ManagedFile(
                f"nginx/site-{s.id}.conf",
                render("nginx/site.conf.j2", **vhost_values(s, "nginx", sockets.get(s.id))),
            )
            for s in state.live_sites()
        ]
        return files + tls_files("nginx", state)

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """The master's open-file limit: set up once, and a restart when the running master
        has too few for its sites (a reload keeps the master's limit)."""
        steps: list[Step] = []
        seen = facts[NGINX_LIMITS]
        if "default-ulimit" not in seen or NGINX_SYSTEMD_DROPIN not in facts.present:
            steps.append(Step("nginx open-file limit", ("sh", "-c", _NGINX_LIMITS, "konbit")))
        master, hard = seen.get("master-nofile", ""), seen.get("hard-nofile", "")
        need = master_nofile(len(state.live_sites()))
        if (
            master.isdigit()
            and int(master) < need
            and (not hard.isdigit() or int(master) < int(hard))
        ):
            steps.append(
                Step(
                    f"restart nginx: its master may open {master} files, {need} needed",
                    ("systemctl", "restart", "nginx"),
                    phase="after",
                )
            )
        return steps

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        # One access log per site is one descriptor per site: lift the session's soft limit.
        return [["sh", "-c", 'ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec nginx -t -q']]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if any(p.startswith(("nginx/", "web/")) for p in changed):
            return [["sh", "-c", _NGINX_RELOAD]]
        return []


APACHE_MODULES = ("proxy_fcgi", "setenvif", "ssl", "http2")
APACHE_ENABLED = Fact(
    "apache2_modules",
    f"for m in {' '.join(APACHE_MODULES)}; do "
    'a2query -m "$m" >/dev/null 2>&1 && echo "$m"; done; true',
    lambda text: frozenset(text.split()),
)


class Apache2(_Vhosts):
    """The alternative web server: event MPM + proxy_fcgi, one VirtualHost per site."""

    name = "apache2"
    facts = (APACHE_ENABLED,)

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
        files = [
            ManagedFile(
                "apache2/00-konbit.conf",
                render(
                    "apache2/konbit.conf.j2",
                    acme_root=ACME_ROOT,
                    apache_protocols="-all +TLSv1.2 +TLSv1.3",
                    tls_ciphers=TLS_CIPHERS,
                ),
            )
        ]
        sockets = site_sockets(state)
        files += [
            ManagedFile(
                f"apache2/site-{s.id}.conf",
                render("apache2/site.conf.j2", **vhost_values(s, "apache2", sockets.get(s.id))),
            )
            for s in state.live_sites()
        ]
        return files + tls_files("apache2", state)

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Modules, enabled once (TLS ones when a site first serves HTTPS): before the
        configuration test, which needs them."""
        enabled = facts[APACHE_ENABLED]
        wanted = ["proxy_fcgi", "setenvif"]
        if any(s.tls for s in state.live_sites()):
            wanted += ["ssl", "http2"]
        missing = [m for m in wanted if m not in enabled]
        if not missing:
            return []
        return [Step(f"apache2 modules {' '.join(missing)}", ("a2enmod", "-q", *missing))]

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["apache2ctl", "-t"]]

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        if any(p.startswith(("apache2/", "web/")) for p in changed):
            return [["systemctl", "reload-or-restart", "apache2"]]
        return []
