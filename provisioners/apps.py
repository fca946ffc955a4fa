"""Applications on web hosts, the Aegir way: platforms (one codebase at one version,
root-owned and read-only under ``/srv/konbit/platforms/<name>``) shared by the sites
installed on them.

A site on a platform keeps only its own files (configuration, uploads) in its document
root; everything else there is a root-owned symlink through ``.platform``, the one link
an update switches (``mv -T``: atomic). The platform's own config files are dispatchers
that load the site's configuration from ``$_SERVER['DOCUMENT_ROOT']`` (see
``panel.apps.build``), so one codebase serves many sites, and a member's code can read the
platform but never change it.

Everything here is imperative and run by the panel's application tasks (install, update,
scan) through ``Applications`` operations; arguments reach fixed scripts as "$1"..,
secrets on stdin as JSON, never in argv.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Any

from provisioners.api import PLATFORMS_ROOT, Command, DesiredState, ManagedFile, Provisioner

PLATFORM_NAME = re.compile(r"^[a-z][a-z0-9.-]{1,62}$")

# The host's PHP-FPM services, reloaded after a switch: each worker caches realpaths and
# compiled scripts of the old codebase (realpath_cache_ttl, opcache), a reload drops both.
_RELOAD_FPM = r"""
for unit in /lib/systemd/system/php*-fpm.service /etc/init.d/php*-fpm; do
    [ -e "$unit" ] || continue
    name="${unit##*/}"; name="${name%.service}"
    if [ -d /run/systemd/system ]; then systemctl reload-or-restart "$name"
    else service "$name" reload >/dev/null 2>&1 || service "$name" restart; fi
done
"""

PUT_PLATFORM = r"""
set -eu
root="$1"; name="$2"; sha="$3"
mkdir -p "$root"; chmod 0755 "$root"
if [ -e "$root/$name" ]; then
    cat >/dev/null
    have="$(cat "$root/$name/.konbit-sha256" 2>/dev/null || true)"
    [ "$have" = "$sha" ] && { echo present; exit 0; }
    echo "platform $name on this host holds another build ($have, $sha wanted): platforms" \
         "never change; give the new build a new name" >&2
    exit 1
fi
tmp="$(mktemp -d "$root/.incoming-XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
cat > "$tmp/artifact"
got="$(sha256sum "$tmp/artifact" | cut -d' ' -f1)"
if [ "$got" != "$sha" ]; then
    echo "platform $name arrived with sha256 $got, $sha expected: upload it again" >&2
    exit 1
fi
mkdir "$tmp/tree"
tar -xzf "$tmp/artifact" -C "$tmp/tree" --no-same-owner
if [ ! -f "$tmp/tree/.konbit-platform.json" ]; then
    echo "platform $name: not a Konbit build" >&2; exit 1
fi
printf '%s\n' "$sha" > "$tmp/tree/.konbit-sha256"
chown -R root:root "$tmp/tree"; chmod -R go-w,u+w "$tmp/tree"; chmod 0755 "$tmp/tree"
mv -T "$tmp/tree" "$root/$name"
echo installed
"""

# Which platforms a host holds, with their builds' checksums.
LIST_PLATFORMS = (
    f"for d in {PLATFORMS_ROOT}/*/; do "
    '[ -f "$d.konbit-sha256" ] && '
    'printf "%s %s\\n" "$(basename "$d")" "$(cat "$d.konbit-sha256")"; '
    "done; true"
)

# Points a site's document root at a platform: its own directories made (as the site's
# user), a new `.platform` link swapped in atomically, links for the platform's entries
# (and for the entries of its directories the site keeps, such as wp-content/themes),
# links that the new platform no longer resolves removed. Files of the site's own are
# never touched. Then PHP-FPM reloads (see _RELOAD_FPM).
LINK = (
    r"""
set -eu
doc="$1"; user="$2"; plat="$3"
meta="$plat/.konbit-platform.json"
[ -f "$meta" ] || { echo "platform $3 is not on this host" >&2; exit 1; }
[ -d "$doc" ] && [ ! -L "$doc" ] || { echo "document root $doc is missing" >&2; exit 1; }
list() { php -r '$m = json_decode(file_get_contents($argv[1]), true);
    foreach ($m[$argv[2]] ?? [] as $x) echo $x, "\n";' "$meta" "$1"; }
own="$(list site_own)"
for d in $(list site_dirs); do
    [ -e "$doc/$d" ] || runuser -u "$user" -- mkdir -p -- "$doc/$d"
done
ln -sfn "$plat" "$doc/.platform.new"
mv -T "$doc/.platform.new" "$doc/.platform"
link_entries() {  # $1: directory of the platform, $2: the site's, $3: link prefix
    for e in "$1"/* "$1"/.[!.]*; do
        [ -e "$e" ] || continue
        n="${e##*/}"
        case "$n" in .konbit-*) continue ;; esac
        if [ -L "$2/$n" ] || [ ! -e "$2/$n" ]; then
            # root's link, or made again: a copy (migrate, restore) gives links to the
            # account, and Apache's SymLinksIfOwnerMatch refuses them into root's platform
            [ "$(readlink "$2/$n" 2>/dev/null)" = "$3$n" ] \
                && [ "$(stat -c %u "$2/$n" 2>/dev/null)" = 0 ] || ln -sfn "$3$n" "$2/$n"
        fi
    done
    for l in "$2"/* "$2"/.[!.]*; do
        [ -L "$l" ] || continue
        case "$(readlink "$l")" in "$3"*) [ -e "$l" ] || rm -f "$l" ;; esac
    done
}
top="$(mktemp -d)"; trap 'rm -rf "$top"' EXIT
# Entries the site keeps are not linked at the top: hide them from link_entries.
for e in "$plat"/* "$plat"/.[!.]*; do
    [ -e "$e" ] || continue
    n="${e##*/}"
    printf '%s\n' "$own" | grep -qxF -- "$n" && continue
    ln -s "$e" "$top/$n"
done
link_entries "$top" "$doc" ".platform/"
for d in $own; do
    [ -d "$plat/$d" ] && [ -d "$doc/$d" ] && [ ! -L "$doc/$d" ] || continue
    link_entries "$plat/$d" "$doc/$d" "$(printf '%s' "$d" | sed 's|[^/]*|..|g')/.platform/$d/"
done
"""
    + _RELOAD_FPM
)

# PHP run as the site's user in its document root, with DOCUMENT_ROOT set as the web
# server sets it (the platform's dispatchers read it); the JSON on stdin is the script's.
RUN_PHP = r"""
set -eu
doc="$1"; user="$2"; code="$3"
cd "$doc"
exec runuser -u "$user" -- env -i PATH=/usr/bin:/bin HOME="$doc" DOCUMENT_ROOT="$doc" \
    php -d display_errors=stderr -d memory_limit=512M -r "$code"
"""

# Each document root's application files that tell its version (panel.apps.detect reads
# them): printed as `file <site id> <relative path>` then the file's first 200 lines, each
# behind "| " (so no line of a file can pass for a marker).  Read as the site's user: a
# member's link to a file only root may read reads nothing.
SCAN = r"""
set -u
probes="$1"; shift
while [ "$#" -ge 3 ]; do
    id="$1"; user="$2"; doc="$3"; shift 3
    [ -d "$doc" ] || continue
    # $probes unquoted on purpose: the panel's fixed relative paths, one word each
    runuser -u "$user" -- sh -c '
        id="$1"; doc="$2"; shift 2
        for p in "$@"; do
            [ -f "$doc/$p" ] && [ -r "$doc/$p" ] || continue
            printf "file %s %s\n" "$id" "$p"
            head -n 200 -- "$doc/$p" | head -c 20000 | sed "s/^/| /"
            printf "\nend\n"
        done' sh "$id" "$doc" $probes 2>/dev/null || true
done
true
"""

_WP_BOOT = r"""
$in = json_decode(stream_get_contents(STDIN), true) ?: [];
$doc = getenv('DOCUMENT_ROOT');
$host = parse_url($in['url'] ?? 'http://localhost/', PHP_URL_HOST) ?: 'localhost';
$_SERVER['HTTP_HOST'] = $host; $_SERVER['SERVER_NAME'] = $host;
$_SERVER['REQUEST_URI'] = '/'; $_SERVER['SERVER_PROTOCOL'] = 'HTTP/1.1';
$_SERVER['REQUEST_METHOD'] = 'GET';
function konbit_out(array $v) { fwrite(STDOUT, "konbit-result " . json_encode($v) . "\n"); }
"""

WP_INSTALL = (
    _WP_BOOT
    + r"""
$q = fn($v) => var_export((string) $v, true);
$cfg = "<?php\n// This site's WordPress configuration, written by Konbit at install.\n";
foreach (['DB_NAME' => $in['db_name'], 'DB_USER' => $in['db_user'],
          'DB_PASSWORD' => $in['db_password'], 'DB_HOST' => $in['db_host'],
          'DB_CHARSET' => 'utf8mb4', 'DB_COLLATE' => ''] as $k => $v) {
    $cfg .= "define(" . $q($k) . ", " . $q($v) . ");\n";
}
foreach ($in['salts'] as $k => $v) {
    $cfg .= "define(" . $q($k) . ", " . $q($v) . ");\n";
}
$cfg .= "\$table_prefix = 'wp_';\n";
$cfg .= "define('WP_CONTENT_DIR', __DIR__ . '/wp-content');\n";
$cfg .= "define('DISALLOW_FILE_MODS', true); // code comes from the platform\n";
$cfg .= "if (!defined('ABSPATH')) { define('ABSPATH', realpath(__DIR__ . '/.platform') . '/'); }\n";
$cfg .= "require_once ABSPATH . 'wp-settings.php';\n";
if (!file_exists("$doc/wp-config.php")) {
    file_put_contents("$doc/.wp-config.php.new", $cfg);
    chmod("$doc/.wp-config.php.new", 0600);
    rename("$doc/.wp-config.php.new", "$doc/wp-config.php");
}
define('WP_INSTALLING', true);
require "$doc/wp-load.php";
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
if (!is_blog_installed()) {
    $r = wp_install($in['title'], $in['admin_user'], $in['admin_email'], true, '',
                    wp_generate_password(40, true, true));
    $GLOBALS['wpdb']->update($GLOBALS['wpdb']->users, ['user_pass' => $in['admin_hash']],
                             ['ID' => $r['user_id']]);
}
update_option('siteurl', $in['url']);
update_option('home', $in['url']);
konbit_out(['version' => $GLOBALS['wp_version']]);
"""
)

WP_UPDATE = (
    _WP_BOOT
    + r"""
define('WP_INSTALLING', true);
require "$doc/wp-load.php";
require_once ABSPATH . 'wp-admin/includes/upgrade.php';
$before = (int) get_option('db_version');
if ($before !== (int) $GLOBALS['wp_db_version']) { wp_upgrade(); }
wp_cache_flush();
konbit_out(['version' => $GLOBALS['wp_version'], 'db_version_before' => $before,
            'db_version' => (int) get_option('db_version')]);
"""
)

WP_STATUS = (
    _WP_BOOT
    + r"""
require "$doc/wp-load.php";
$db = (int) get_option('db_version');
konbit_out(['version' => $GLOBALS['wp_version'], 'installed' => is_blog_installed(),
            'db_current' => $db === (int) $GLOBALS['wp_db_version'],
            'title' => get_option('blogname')]);
"""
)

# MediaWiki: its own installer and updater (maintenance/*.php) from the platform, with the
# site's configuration path; then the admin's password hash set through MediaWiki's own
# database layer (the installer needs a password: a throwaway one).
MW_INSTALL = r"""
$in = json_decode(stream_get_contents(STDIN), true) ?: [];
$doc = getenv('DOCUMENT_ROOT');
$ip = realpath("$doc/.platform");
function konbit_out(array $v) { fwrite(STDOUT, "konbit-result " . json_encode($v) . "\n"); }
function konbit_run(array $argv) {
    $cmd = implode(' ', array_map('escapeshellarg', array_merge([PHP_BINARY], $argv)));
    passthru($cmd, $code);
    if ($code !== 0) { fwrite(STDERR, "failed ($code): {$argv[0]}\n"); exit($code); }
}
if (!file_exists("$doc/LocalSettings.php")) {
    $throwaway = bin2hex(random_bytes(16));
    // The installer refuses a tree that has a LocalSettings.php (the platform has its
    // dispatcher): it runs from the document root, whose links show it everything else.
    putenv("MW_INSTALL_PATH=$doc");
    konbit_run(["$doc/maintenance/install.php", "--confpath=$doc",
        "--dbtype=" . $in['db_type'], "--dbserver=" . $in['db_host'],
        "--dbname=" . $in['db_name'], "--dbuser=" . $in['db_user'],
        "--dbpass=" . $in['db_password'], "--server=" . rtrim($in['url'], '/'),
        "--scriptpath=", "--lang=" . $in['lang'], "--pass=$throwaway",
        $in['title'], $in['admin_user']]);
    chmod("$doc/LocalSettings.php", 0600);
    putenv('MW_INSTALL_PATH');
}
$hash = var_export($in['admin_hash'], true);
$user = var_export(ucfirst($in['admin_user']), true);
// The admin's password hash set through MediaWiki's own database layer, in a maintenance
// script of its usual shape (values as PHP literals: var_export quotes them).
$script = "<?php\nrequire_once getenv('MW_INSTALL_PATH') . '/maintenance/Maintenance.php';\n"
    . "class KonbitAdminPassword extends Maintenance {\n"
    . "    public function execute() {\n"
    . "        \$dbw = \$this->getDB(DB_PRIMARY);\n"
    . "        \$dbw->update('user', ['user_password' => $hash],\n"
    . "            ['user_name' => $user], __METHOD__);\n"
    . "        if (\$dbw->affectedRows() !== 1) { \$this->fatalError('no admin user ' . $user); }\n"
    . "    }\n}\n\$maintClass = KonbitAdminPassword::class;\n"
    . "require_once RUN_MAINTENANCE_IF_MAIN;\n";
$tmp = tempnam(sys_get_temp_dir(), 'konbit');
file_put_contents($tmp, $script);
putenv("MW_INSTALL_PATH=$ip");
konbit_run([$tmp]);
unlink($tmp);
konbit_out(['installed' => true]);
"""

MW_UPDATE = r"""
$doc = getenv('DOCUMENT_ROOT');
$ip = realpath("$doc/.platform");
function konbit_out(array $v) { fwrite(STDOUT, "konbit-result " . json_encode($v) . "\n"); }
$argv = [PHP_BINARY, "$ip/maintenance/update.php", '--quick', "--conf=$doc/LocalSettings.php"];
passthru(implode(' ', array_map('escapeshellarg', $argv)), $code);
if ($code !== 0) { exit($code); }
konbit_out(['updated' => true]);
"""

MW_STATUS = r"""
$doc = getenv('DOCUMENT_ROOT');
$ip = realpath("$doc/.platform");
function konbit_out(array $v) { fwrite(STDOUT, "konbit-result " . json_encode($v) . "\n"); }
$src = @file_get_contents("$ip/includes/Defines.php") ?: '';
preg_match("/define\\(\\s*'MW_VERSION',\\s*'([^']+)'/", $src, $m);
konbit_out(['version' => $m[1] ?? null, 'installed' => file_exists("$doc/LocalSettings.php")]);
"""

# DokuWiki: no database. Each wiki's own files are in its document root's .dokuwiki/
# (conf/ and data/, see panel.apps.build: the platform's inc/preload.php reads them from
# there); the install writes what DokuWiki's own install.php would (local.php,
# users.auth.php with the admin's hash, acl.auth.php, plugins.local.php), local.php last
# (the platform serves a wiki once it exists), then the start page through DokuWiki.
_DW_BOOT = r"""
$in = json_decode(stream_get_contents(STDIN), true) ?: [];
$doc = getenv('DOCUMENT_ROOT');
$ip = realpath("$doc/.platform");
$site = "$doc/.dokuwiki"; $cf = "$site/conf"; $data = "$site/data";
function konbit_out(array $v) { fwrite(STDOUT, "konbit-result " . json_encode($v) . "\n"); }
function konbit_fail(string $m) { fwrite(STDERR, "$m\n"); exit(1); }
// The directories a wiki's data needs: the platform's skeleton's (with its files when
// $files: a new wiki's first pages and media), and those DokuWiki's init insists on.
function konbit_data(string $from, string $to, bool $files) {
    if (!is_dir($to) && !mkdir($to, 0755, true)) { konbit_fail("cannot make $to"); }
    foreach (is_dir($from) ? scandir($from) : [] as $n) {
        if ($n === '.' || $n === '..' || is_link("$from/$n")) { continue; }
        if (is_dir("$from/$n")) { konbit_data("$from/$n", "$to/$n", $files); }
        elseif ($files && is_file("$from/$n") && !file_exists("$to/$n")) {
            copy("$from/$n", "$to/$n") || konbit_fail("cannot copy $from/$n");
        }
    }
}
function konbit_dirs(string $ip, string $data, bool $files) {
    konbit_data("$ip/data", $data, $files);
    foreach (['pages', 'attic', 'media', 'media_attic', 'meta', 'media_meta', 'cache',
              'index', 'locks', 'tmp', 'log'] as $d) {
        if (!is_dir("$data/$d") && !mkdir("$data/$d", 0755, true)) { konbit_fail("no $data/$d"); }
    }
}
function konbit_version(string $ip) {
    $v = trim((string) @file_get_contents("$ip/VERSION"));
    return preg_match('/^(?:rc)?\d{4}-\d{2}-\d{2}[a-z]?/', $v, $m) ? $m[0] : null;
}
function konbit_boot(string $ip) {  // DokuWiki itself, as its bin/ scripts load it
    if (!defined('DOKU_INC')) { define('DOKU_INC', "$ip/"); }
    if (!defined('NOSESSION')) { define('NOSESSION', true); }
    require_once DOKU_INC . 'inc/init.php';
}
if (!$ip || !is_dir($site)) { konbit_fail("$doc is not linked to a DokuWiki platform"); }
"""

DW_INSTALL = (
    _DW_BOOT
    + r"""
chmod($site, 0700);  // the wiki's conf and pages: the site's user alone (PHP runs as it)
konbit_dirs($ip, $data, true);
$now = gmdate('r');
$put = function (string $name, string $text) use ($cf) {
    if (file_exists("$cf/$name")) { return; }
    file_put_contents("$cf/.$name.new", $text) !== false || konbit_fail("cannot write $name");
    chmod("$cf/.$name.new", 0600);
    rename("$cf/.$name.new", "$cf/$name");
};
$q = fn($v) => var_export((string) $v, true);
// authplain's names are DokuWiki ids (lower case, no leading or trailing marks).
$login = trim(strtolower($in['admin_user']), '._-');
$line = implode(':', str_replace(':', '\\:', str_replace('\\', '\\\\', [
    $login, $in['admin_hash'], rawurlencode($in['admin_user']), $in['admin_email'], 'admin,user',
])));
$put('users.auth.php', "# users.auth.php\n# <?php exit()?>\n# Don't modify the lines above\n"
    . "#\n# Written by Konbit at install, $now\n#\n"
    . "# Format:\n# login:passwordhash:Real Name:email:groups,comma,separated\n\n$line\n");
// A public wiki: everyone reads, only users (none register themselves) write.
$put('acl.auth.php', "# acl.auth.php\n# <?php exit()?>\n# Don't modify the lines above\n"
    . "#\n# Written by Konbit at install, $now\n\n"
    . "*               @ALL          1\n*               @user         8\n");
$put('plugins.local.php', "<?php\n// Written by Konbit at install: the other auth plugins off.\n"
    . "\$plugins['authad'] = 0;\n\$plugins['authldap'] = 0;\n\$plugins['authpdo'] = 0;\n");
$put('local.php', "<?php\n// This wiki's own settings, written by Konbit at install (the\n"
    . "// Configuration Manager edits them); the defaults: the platform's conf/dokuwiki.php.\n"
    . "\$conf['title'] = " . $q($in['title']) . ";\n"
    . "\$conf['lang'] = " . $q($in['lang']) . ";\n"
    . "\$conf['useacl'] = 1;\n\$conf['authtype'] = 'authplain';\n"
    . "\$conf['superuser'] = '@admin';\n\$conf['disableactions'] = 'register';\n"
    . "\$conf['updatecheck'] = 0; // the provider updates the code (its platforms)\n");
$_SERVER['REMOTE_USER'] = $login;  // the start page's first revision is the admin's
konbit_boot($ip);
global $conf;
if (!page_exists($conf['start'])) {
    $title = trim(str_replace('=', '', $conf['title']));
    saveWikiText($conf['start'], "====== $title ======\n\nWelcome! Log in as **$login** to "
        . "edit this page; [[wiki:syntax]] shows how.\n", 'created at install');
}
if (!page_exists($conf['start'])) { konbit_fail("the start page could not be written"); }
konbit_out(['version' => konbit_version($ip), 'installed' => true, 'admin' => $login]);
"""
)

# DokuWiki's upgrade is its new code (the switch) and every cache purged (conf/local.php
# touched, as its docs say), with the update check's cached messages dropped; and any data
# directory the new version's skeleton has that the wiki lacks.
DW_UPDATE = (
    _DW_BOOT
    + r"""
konbit_dirs($ip, $data, false);
touch("$cf/local.php") || konbit_fail("cannot touch $cf/local.php");
@unlink("$data/cache/messages.txt");
clearstatcache();
konbit_boot($ip);
konbit_out(['updated' => true, 'version' => konbit_version($ip)]);
"""
)

DW_STATUS = (
    _DW_BOOT
    + r"""
konbit_boot($ip);
global $conf;
konbit_out(['version' => konbit_version($ip), 'installed' => is_file("$cf/users.auth.php"),
            'title' => $conf['title'], 'start_page' => page_exists($conf['start'])]);
"""
)

SCRIPTS: dict[str, dict[str, str]] = {
    "wordpress": {"install": WP_INSTALL, "update": WP_UPDATE, "status": WP_STATUS},
    "mediawiki": {"install": MW_INSTALL, "update": MW_UPDATE, "status": MW_STATUS},
    "dokuwiki": {"install": DW_INSTALL, "update": DW_UPDATE, "status": DW_STATUS},
}


def parse_result(text: str) -> dict[str, Any] | None:
    """The last ``konbit-result {json}`` line a script printed."""
    found: dict[str, Any] | None = None
    for line in text.splitlines():
        if line.startswith("konbit-result "):
            try:
                value = json.loads(line.removeprefix("konbit-result "))
            except ValueError:
                continue
            if isinstance(value, dict):
                found = value
    return found


def parse_scan(text: str) -> dict[int, dict[str, str]]:
    """site id -> {relative path: the file's first lines} from ``SCAN``'s output."""
    out: dict[int, dict[str, str]] = {}
    current: tuple[int, str] | None = None
    body: list[str] = []
    for line in text.splitlines():
        if current is None:
            word, _, rest = line.partition(" ")
            site, _, path = rest.partition(" ")
            if word == "file" and site.isdigit() and path:
                current, body = (int(site), path), []
        elif line == "end":
            out.setdefault(current[0], {})[current[1]] = "\n".join(body)
            current = None
        elif line.startswith("| "):
            body.append(line[2:])
        elif line == "|":
            body.append("")
    return out


class ApplicationOperations:
    """What the panel's application tasks run on a web host (``panel.apps``)."""

    apps = tuple(SCRIPTS)

    def platforms(self) -> Command:
        """Prints ``<name> <sha256>`` for each platform the host holds."""
        return Command.script(LIST_PLATFORMS)

    def parse_platforms(self, text: str) -> dict[str, str]:
        return {
            name: sha
            for name, _, sha in (line.partition(" ") for line in text.splitlines())
            if PLATFORM_NAME.fullmatch(name) and re.fullmatch(r"[0-9a-f]{64}", sha)
        }

    def put_platform(self, name: str, sha256: str, artifact: bytes) -> Command:
        """Unpacks a platform build (checked against its checksum) into place, root-owned;
        nothing when the host holds it already, an error when it holds another build."""
        _check_name(name)
        return Command.script(PUT_PLATFORM, PLATFORMS_ROOT, name, sha256, stdin=artifact)

    def link(self, root: str, user: str, platform: str) -> Command:
        """Points a document root at a platform (see ``LINK``); PHP-FPM reloads."""
        _check_name(platform)
        return Command.script(LINK, root, user, f"{PLATFORMS_ROOT}/{platform}")

    def run(
        self, app: str, action: str, root: str, user: str, values: Mapping[str, Any]
    ) -> Command:
        """The application's own ``action`` (install, update, status) for one site, as the
        site's user; ``values`` (secrets included) go on stdin.  The output's last
        ``konbit-result`` line is the outcome (``parse_result``)."""
        code = SCRIPTS[app][action]
        return Command.script(RUN_PHP, root, user, code, stdin=json.dumps(dict(values)).encode())

    def parse_result(self, text: str) -> dict[str, Any] | None:
        return parse_result(text)

    def scan(self, roots: Mapping[int, tuple[str, str]], probes: Sequence[str]) -> Command:
        """One command that prints, for every document root ({site id: (its unix user,
        the root)}), the files that tell which application it holds (``parse_scan``)."""
        for probe in probes:
            if not re.fullmatch(r"[A-Za-z0-9_./-]{1,100}", probe) or ".." in probe:
                raise ValueError(f"not a probe path: {probe!r}")
        args = [
            x for site_id, (user, root) in sorted(roots.items()) for x in (str(site_id), user, root)
        ]
        return Command.script(SCAN, " ".join(probes), *args)

    def parse_scan(self, text: str) -> dict[int, dict[str, str]]:
        return parse_scan(text)


def _check_name(name: str) -> None:
    if not PLATFORM_NAME.fullmatch(name):  # the panel checks it first; a host never sees one
        raise ValueError(f"not a platform name: {name!r}")


class Applications(Provisioner):
    """Platforms and the sites on them; serves the panel's application tasks only (no
    files of its own: a platform is content, not configuration, and a switch is a task's
    step with a backup and a rollback around it)."""

    name = "apps"
    roles = ("web",)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return []

    def operations(self) -> ApplicationOperations:
        return ApplicationOperations()
