"""The web plugin's operations for the panel's tasks (``provisioners.api.operations``):
document roots copied out and in, site keys and ACME answers, files on a backup host.

Each script gets its values as "$1".. (never interpolated) and exits non-zero on any
failure.
"""

from __future__ import annotations

from collections.abc import Sequence

from provisioners.api.operations import Command
from provisioners.web.common import ACME_ROOT, ARCHIVE, ARCHIVE_DIR, PRIVATE_ROOT, WWW_ROOT, key_dir

# "$2": "z" to gzip (the store), "" for a plain stream (host to host).
_TAR_OUT = r"""
set -eu
cd -- "$1"
tar --numeric-owner -c${2}f - .
"""

# Files into a document root: unpacked beside it, owned by the account, then swapped in;
# the tree it replaces is archived ("$4") or, with an empty "$4", removed; "$5": "z" when
# the stream is gzip'd.
_PUT_FILES = r"""
set -eu
root="$1"; user="$2"; tag="$3"; archive="$4"
id -u "$user" >/dev/null 2>&1 || { echo "no unix user $user on this host" >&2; exit 1; }
new="$root.konbit-$tag"
rm -rf -- "$new"
mkdir -p -- "$new"
tar --numeric-owner -x${5}pf - -C "$new"
chown -R -h -- "$user:www-data" "$new"
chmod 2750 "$new"
if [ -e "$root" ] || [ -L "$root" ]; then
    if [ -n "$archive" ]; then
        mkdir -p -- "$(dirname "$archive")"
        chmod 0700 -- "$(dirname "$(dirname "$archive")")"
        mv -T -- "$root" "$archive"
    else
        rm -rf -- "$root"
    fi
fi
mkdir -p -- "$(dirname "$root")"
mv -T -- "$new" "$root"
"""

_STORE = r"""
set -eu
umask 077
mkdir -p -- "$(dirname "$1")"
cat > "$1.partial"
mv -f -- "$1.partial" "$1"
"""

# Config files of common applications (WordPress, Joomla, Drupal, MediaWiki, Nextcloud,
# Laravel, Magento, Symfony, phpMyAdmin...) under a document root, at most 5 levels down,
# regular files under 1 MiB: each whole-word old name ("$2", "$4"...) becomes its new one
# ("$3", "$5"...).  Run as the site's unix user, so a symlink or a file it does not own is
# out of reach; a file is replaced by rename, keeping its mode.  Prints what it changed.
_REWRITE = r"""
use strict; use warnings; use File::Find ();
my ($root, %map) = @ARGV;
exit 0 unless %map && -d $root;
my %names = map { $_ => 1 } qw(wp-config.php configuration.php settings.php settings.local.php
    LocalSettings.php config.php config.inc.php local.php env.php .env database.php
    parameters.yml parameters.yaml database.yml config.yml);
my $alt = join "|", map { quotemeta } sort { length($b) <=> length($a) } keys %map;
my $re = qr/(?<![\w.\-])($alt)(?![\w.\-])/;
my $base = ($root =~ tr{/}{});
my $failed = 0;
File::Find::find({ no_chdir => 1, wanted => sub {
    my $path = $File::Find::name;
    my @st = lstat $path or return;
    if (-d _) { $File::Find::prune = 1 if ($path =~ tr{/}{}) - $base >= 5; return }
    return unless -f _ && $st[7] < 1048576;
    my ($name) = $path =~ m{([^/]+)\z};
    return unless $names{$name};
    open(my $in, "<:raw", $path) or return;
    my $text = do { local $/; <$in> };
    close $in;
    (my $new = $text) =~ s/$re/$map{$1}/g;
    return if $new eq $text;
    my $tmp = "$path.konbit-rewrite";
    if (open(my $out, ">:raw", $tmp) and chmod($st[2] & 07777, $tmp)) {
        print $out $new;
        if (close $out and rename $tmp, $path) {
            print substr($path, length $root), "\n";
            return;
        }
    }
    unlink $tmp;
    warn "$path: $!\n";
    $failed = 1;
} }, $root);
exit $failed;
"""
_SIZE = 'du -sb -- "$1" | cut -f1'
_UNTAR_KEYS = 'install -d -m 0700 "$1" && tar -xzpf - -C "$1"'
_REMOVE_COPY = 'rm -rf -- "$1" "$1".konbit-*'  # a tree and its staging copies

# On the web host: a new P-256 key (0600, root) and a CSR for the site's names, to stdout.
# Names are validated domain names (no commas, no slashes) passed as arguments.
_KEY_AND_CSR = r"""
set -eu
umask 077
dir="$1"; key="$2"; shift 2
mkdir -p -m 0700 -- "$dir"
chmod 0700 -- "$(dirname "$dir")" "$dir"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$dir/.$key.new" 2>/dev/null
mv -f -- "$dir/.$key.new" "$dir/$key"
san=""
for n in "$@"; do san="${san:+$san,}DNS:$n"; done
subj="/"
if [ "${#1}" -le 64 ]; then subj="/CN=$1"; fi
openssl req -new -key "$dir/$key" -subj "$subj" -addext "subjectAltName=$san" -outform PEM
"""

_WRITE_CHALLENGE = r"""
set -eu
umask 022
mkdir -p -- "$1"
cat > "$1/.$2.new"
mv -f -- "$1/.$2.new" "$1/$2"
"""


class WebOperations:
    """``SiteFiles``, ``SiteKeys`` and ``BackupStore`` on Debian hosts set up by the web
    plugins (document roots under ``WWW_ROOT``, keys under ``PRIVATE_ROOT``)."""

    # -- SiteFiles

    def document_root(self, slug: str, document_root: str) -> str:
        return f"{WWW_ROOT}/{slug}/{document_root}"

    def archive_path(self, slug: str, name: str) -> str:
        return f"{ARCHIVE_DIR}/{slug}/{name}"

    def tar_out(self, root: str, *, gz: bool) -> Command:
        """Gzip'd for the store; plain from host to host, where the panel's relay
        (~80 MB/s) outruns gzip (~20 MB/s, one core of the host)."""
        return Command.script(_TAR_OUT, root, "z" if gz else "")

    def put_files(
        self, root: str, user: str, tag: str, *, archive: str | None, gz: bool
    ) -> Command:
        return Command.script(_PUT_FILES, root, user, tag, archive or "", "z" if gz else "")

    def archive(self, root: str, dest: str) -> Command:
        return Command.script(ARCHIVE, root, dest)

    def remove_copy(self, root: str) -> Command:
        return Command.script(_REMOVE_COPY, root)

    def rewrite_names(self, root: str, user: str, renames: Sequence[tuple[str, str]]) -> Command:
        pairs = [x for pair in renames for x in pair]
        return Command(("runuser", "-u", user, "--", "perl", "-e", _REWRITE, "--", root, *pairs))

    # -- SiteKeys

    def key_dir(self, site_id: int) -> str:
        return key_dir(site_id)

    def has_keys(self, site_id: int) -> Command:
        return Command(("test", "-d", key_dir(site_id)))

    def keys_out(self, site_id: int) -> Command:
        return Command(("tar", "-C", PRIVATE_ROOT, "-czf", "-", f"site-{site_id}"))

    def put_keys(self) -> Command:
        return Command.script(_UNTAR_KEYS, PRIVATE_ROOT)

    def remove_keys(self, site_id: int) -> Command:
        return Command(("rm", "-rf", "--", key_dir(site_id)))

    def new_key_and_csr(self, site_id: int, key_name: str, names: Sequence[str]) -> Command:
        return Command.script(_KEY_AND_CSR, key_dir(site_id), key_name, *names)

    def remove_key(self, site_id: int, key_name: str) -> Command:
        return Command(("rm", "-f", "--", f"{key_dir(site_id)}/{key_name}"))

    def write_challenge(self, token: str, validation: bytes) -> Command:
        return Command.script(_WRITE_CHALLENGE, ACME_ROOT, token, stdin=validation)

    def remove_challenges(self, tokens: Sequence[str]) -> Command:
        return Command(("rm", "-f", "--", *(f"{ACME_ROOT}/{t}" for t in tokens)))

    # -- BackupStore

    def store(self, path: str) -> Command:
        return Command.script(_STORE, path)

    def read(self, path: str) -> Command:
        return Command(("cat", "--", path))

    def remove(self, path: str) -> Command:
        return Command(("rm", "-rf", "--", path))

    def size(self, path: str) -> Command:
        return Command.script(_SIZE, path)
