"""Web hosts: accounts' unix users and directories, nginx or apache2 vhosts, PHP-FPM pools."""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field

from provisioners.api import (
    KONBIT_ROOT,
    LIVE,
    DesiredState,
    Fact,
    Facts,
    HostView,
    ManagedFile,
    Metric,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Sample,
    SiteView,
    Step,
    lines,
)
from provisioners.api.values import PhpVersion
from provisioners.templating import render, static

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


def _site_values(site: SiteView) -> dict[str, object]:
    return {
        "site": site,
        "names": (site.domain, *site.aliases),
        "docroot": docroot(site),
        "log_dir": LOG_DIR,
        "suspended_root": SUSPENDED_ROOT,
        "php_socket": php_socket(site.account.slug, site.php) if site.php else "",
    }


def _vhost_values(site: SiteView, server: str) -> dict[str, object]:
    """A site's values plus its TLS files, as ``server`` (nginx or apache2) reads them."""
    tls = site.tls
    return {
        **_site_values(site),
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


def _host_keys(facts: Facts) -> set[str]:
    """``site-<id>/<name>`` of every private key the host holds."""
    return {line[4:].strip() for line in facts[WEB_DIRS] if line.startswith("key ")}


class WebHome(Provisioner):
    """Each account's unix user, home and document roots; archives on delete."""

    name = "web"
    roles = ("web",)
    settings = WebSettings
    kinds = (ObjectKind("site", "web", title="site"),)
    metrics = (
        Metric("disk_bytes", "web", storage_of="account"),  # a home, its sites included
        Metric("site_bytes", "web"),  # one site's document root (detail of disk_bytes)
        Metric("http_requests", "web", counter=True),
        Metric("http_bytes", "web", counter=True),
    )
    facts = (WEB_DIRS,)

    def operations(self) -> object:
        """Document roots, site keys and backup files for the panel's tasks."""
        from provisioners.web_operations import WebOperations  # it imports this module

        return WebOperations()

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return [ManagedFile("web/suspended/index.html", static("suspended.html"))]

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Batched: all new users in one process, every account's dirs in another."""
        steps: list[Step] = []
        seen = facts[WEB_DIRS]
        if "logdir" not in seen:
            steps.append(
                Step(
                    "log and web directories",
                    ("install", "-d", "-m", "0755", LOG_DIR, WWW_ROOT, ACME_ROOT),
                )
            )
        steps += self._tls_steps(state, facts, changed)
        live = state.live_sites()
        accounts = sorted({s.account for s in live}, key=lambda a: a.slug)
        new_users = [a for a in accounts if a.unix_user not in facts.users]
        if new_users:
            steps.append(
                Step(
                    f"unix users {', '.join(a.unix_user for a in new_users)}",
                    ("perl", "-e", _ADD_USERS),
                    stdin="".join(f"{a.unix_user} {home(a.slug)}\n" for a in new_users).encode(),
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
                    ("perl", "-e", _ENSURE_DIRS),
                    object_ids=tuple(blamed),
                    # On stdin, one token a line: 10,000 sites are ~1.8 MB, near ARG_MAX.
                    stdin="".join(f"{t}\n" for t in spec).encode(),
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

    def _tls_steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> list[Step]:
        """Uploaded keys the host lacks (on stdin, before validation), older keys of a site
        whose vhost changed, and a deleted site's keys (after)."""
        keys = _host_keys(facts)
        held = {k.partition("/")[0] for k in keys}
        steps: list[Step] = []
        for site in state.sites:
            tls, ref = site.tls, ("site", site.id)
            if site.deleting:
                if f"site-{site.id}" in held:
                    steps.append(
                        Step(
                            f"remove the TLS keys of {site.domain}",
                            ("rm", "-rf", "--", key_dir(site.id)),
                            phase="after",
                            object_ids=(ref,),
                        )
                    )
                continue
            if tls is None:
                continue
            if tls.key_pem is not None and f"site-{site.id}/{tls.key_name}" not in keys:
                steps.append(
                    Step(
                        f"TLS key of {site.domain}",
                        ("sh", "-c", _INSTALL_KEY, "konbit", key_dir(site.id), tls.key_name),
                        object_ids=(ref,),
                        stdin=tls.key_pem,
                    )
                )
            others = {k for k in keys if k.startswith(f"site-{site.id}/")}
            others.discard(f"site-{site.id}/{tls.key_name}")
            if others and any(p in changed for p in site_paths(site.id)):
                # Keys younger than an hour may belong to an order in flight.
                steps.append(
                    Step(
                        f"older TLS keys of {site.domain}",
                        (
                            "find",
                            key_dir(site.id),
                            "-maxdepth",
                            "1",
                            "-name",
                            "*.key",
                            "!",
                            "-name",
                            tls.key_name,
                            "-mmin",
                            "+60",
                            "-delete",
                        ),
                        phase="after",
                        object_ids=(ref,),
                    )
                )
        return steps

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        """Disk of every account home and site, then each site's traffic since the last
        collection: two ``du`` and one perl over all the logs."""
        live = state.live_sites()
        if not live:
            return None
        homes = sorted({home(s.account.slug) for s in live})
        roots = sorted({docroot(s) for s in live})
        logs = "".join(
            f"{s.id}\t{access_log(s.id)}\t{cursor.get(str(s.id), ['', 0])[0]}"
            f"\t{int(cursor.get(str(s.id), ['', 0])[1])}\n"
            for s in live
        )
        return (
            f"du -s -B1 -- {shlex.join(homes)} 2>/dev/null | sed 's/^/home\t/' || true\n"
            f"du -s -B1 -- {shlex.join(roots)} 2>/dev/null | sed 's/^/root\t/' || true\n"
            f"printf '%s' {shlex.quote(logs)} | perl -e {shlex.quote(_COUNT_LOGS)}"
        )

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        live = state.live_sites()
        by_home = {home(s.account.slug): s.account for s in live}
        by_root = {docroot(s): s for s in live}
        samples: list[Sample] = []
        new_cursor = dict(cursor)
        for line in output.splitlines():
            kind, _, rest = line.partition("\t")
            if kind in ("home", "root"):
                size, _, path = rest.partition("\t")
                if not size.isdigit():
                    continue
                if kind == "home" and path in by_home:
                    samples.append(Sample(("account", by_home[path].id), "disk_bytes", int(size)))
                elif kind == "root" and path in by_root:
                    samples.append(Sample(("site", by_root[path].id), "site_bytes", int(size)))
            elif kind == "log":
                site_id, requests, sent, inode, offset = rest.split("\t")
                ref = ("site", int(site_id))
                samples.append(Sample(ref, "http_requests", int(requests), counter=True))
                samples.append(Sample(ref, "http_bytes", int(sent), counter=True))
                new_cursor[site_id] = [inode, int(offset)]
        return samples, new_cursor


def access_log(site_id: int) -> str:
    return f"{LOG_DIR}/site-{site_id}.access.log"


# Each site's requests and bytes sent since the last collection: from the remembered
# (inode, offset) to the last complete line. Rotation (logrotate renames the log to .1,
# delaycompress keeps it plain one cycle) is followed by inode: the rest of the old file
# is read, then the new one from its start; a log shorter than the offset was truncated
# and is read from the start. No line is counted twice or skipped.
_COUNT_LOGS = r"""
use strict;
use warnings;
while (my $spec = <STDIN>) {
    chomp $spec;
    my ($id, $path, $ino, $off) = split /	/, $spec, 4;
    my @cur = stat($path);
    unless (@cur) { print "log	$id	0	0	$ino	$off
"; next; }
    my @files;
    if ($ino ne '' && $ino != $cur[1]) {
        my @old = stat("$path.1");
        push @files, ["$path.1", $off] if @old && $old[1] == $ino;
        push @files, [$path, 0];
    } else {
        push @files, [$path, $off > $cur[7] ? 0 : $off];
    }
    my ($requests, $sent, $pos) = (0, 0, 0);
    for my $file (@files) {
        my ($p, $start) = @$file;
        open(my $fh, '<:raw', $p) or next;
        seek($fh, $start, 0);
        $pos = $start;
        while (my $line = <$fh>) {
            last unless $line =~ /
\z/;    # still being written: next time
            $pos += length $line;
            $requests++;
            $sent += $1 if $line =~ /^\S+ \S+ \S+ \[[^\]]*\] "[^"]*" \d{3} (\d+) /;
        }
        close $fh;
    }
    print "log	$id	$requests	$sent	$cur[1]	$pos
";
}
"""


def site_paths(site_id: int) -> tuple[str, ...]:
    return (f"nginx/site-{site_id}.conf", f"apache2/site-{site_id}.conf")


_SITE_FILE = re.compile(r"(?:nginx|apache2)/(?:tls/)?site-(\d+)\.(?:conf|pem)")

# A member's uploaded key, from stdin into the site's key directory (root only), atomically.
_INSTALL_KEY = r"""
set -eu
umask 077
mkdir -p -m 0700 -- "$1"
chmod 0700 -- "$(dirname "$1")" "$1"
cat > "$1/.$2.new"
mv -f -- "$1/.$2.new" "$1/$2"
"""


class _Vhosts(Provisioner):
    """What nginx and apache2 share: one vhost file per site, named after its id."""

    roles = ("web",)
    settings = WebSettings

    def object_of(self, path: str) -> ObjectRef | None:
        m = _SITE_FILE.fullmatch(path)
        return ("site", int(m.group(1))) if m else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("site", int(i)) for i in _SITE_FILE.findall(message)}


# All missing users in one perl process (perl-base is Essential on Debian; python3 is not
# guaranteed), the way shadow-utils' useradd edits the databases: lckpwdf(3) (a write lock
# on /etc/.pwd.lock, 15 s at most), then each file's ``<file>.lock`` (a PID file linked into
# place, stale locks of dead processes removed), the files read under the locks (so a
# second run, concurrent or later, sees the first one's users and adds nothing), new lines
# before any NIS ``+``/``-`` entry, each file written as ``<file>+`` with the old owner and
# mode, fsynced and renamed over it (the previous content kept as ``<file>-``), passwd
# last: a run killed half-way leaves no passwd entry, so the next one completes the user.
# Ids come from UID_MIN..UID_MAX and GID_MIN..GID_MAX of /etc/login.defs, free in both
# passwd and group (uid = gid, as useradd does with USERGROUPS_ENAB), above the highest in
# use; a locked password ("!") and a shell that refuses logins.  Users and homes come on
# stdin, one "user home" per line.  Homes themselves are made by _ENSURE_DIRS.
_ADD_USERS = r"""
use strict;
use warnings;
use Fcntl qw(O_WRONLY O_CREAT O_TRUNC O_NOFOLLOW F_SETLKW F_WRLCK SEEK_SET);
use POSIX qw(ESRCH);
use IO::Handle;

my (@want, %home);
while (my $line = <STDIN>) {
    my ($u, $h) = split ' ', $line;
    next unless defined $h;
    push @want, $u unless exists $home{$u};
    $home{$u} = $h;
}
exit 0 unless @want;
my %defs = (UID_MIN => 1000, UID_MAX => 60000, GID_MIN => 1000, GID_MAX => 60000,
            PASS_MIN_DAYS => 0, PASS_MAX_DAYS => 99999, PASS_WARN_AGE => 7);
if (open(my $fh, "<", "/etc/login.defs")) {
    while (<$fh>) { $defs{$1} = $2 if /^\s*(\w+)\s+(-?\d+)\s*$/ && exists $defs{$1}; }
    close $fh;
}

my @held;
sub release { unlink @held; @held = (); }
$SIG{TERM} = $SIG{INT} = $SIG{HUP} = sub { release(); exit 1; };

# lckpwdf(3) as glibc does it.  struct flock starts with two shorts (l_type, l_whence) on
# every Linux ABI; zeros for the rest mean the whole file, whatever the size of off_t.
sysopen(my $pwd_lock, "/etc/.pwd.lock", O_WRONLY | O_CREAT, 0600) or die "/etc/.pwd.lock: $!\n";
{
    local $SIG{ALRM} = sub { die "/etc/.pwd.lock is still locked after 15 s\n" };
    my $flock = pack("s s", F_WRLCK, SEEK_SET) . ("\0" x 60);
    alarm 15;
    fcntl($pwd_lock, F_SETLKW, $flock) or die "locking /etc/.pwd.lock: $!\n";
    alarm 0;
}

# shadow-utils' commonio_lock_nowait: <file>.<pid> holding the PID, hard-linked to
# <file>.lock; a lock whose process is gone is stale and replaced once.
sub lock_db {
    my ($db) = @_;
    my ($tmp, $lock) = ("$db.$$", "$db.lock");
    for my $try (1, 2) {
        sysopen(my $fh, $tmp, O_CREAT | O_TRUNC | O_WRONLY, 0600) or die "$tmp: $!\n";
        print $fh "$$\0";
        close($fh) or die "$tmp: $!\n";
        if (link($tmp, $lock)) {
            my $links = (stat $tmp)[3];
            unlink $tmp;
            die "$lock: lock file already used\n" unless $links == 2;
            push @held, $lock;
            return;
        }
        unlink $tmp;
        open(my $lh, "<", $lock) or die "$lock: $!\n";
        my $pid = <$lh> // "";
        close $lh;
        $pid =~ /^(\d+)/ or die "$lock holds no PID\n";
        die "$lock is held by PID $1\n" if kill(0, $1) || $! != ESRCH;
        unlink $lock or die "$lock (stale): $!\n";
    }
    die "cannot lock $db\n";
}

sub slurp {
    my ($path) = @_;
    open(my $fh, "<", $path) or die "$path: $!\n";
    my @lines = <$fh>;
    close $fh;
    chomp @lines;
    return \@lines;
}

sub write_db {
    my ($path, $old, $lines) = @_;
    my @st = stat $path or die "$path: $!\n";
    for my $pair (["$path-", $old], [$path, $lines]) {
        my ($dest, $content) = @$pair;
        my $tmp = "$path+";
        sysopen(my $fh, $tmp, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW, 0600)
            or die "$tmp: $!\n";
        chown($st[4], $st[5], $fh) or die "chown $tmp: $!\n";
        chmod($st[2] & 07777, $fh) or die "chmod $tmp: $!\n";
        print $fh map { "$_\n" } @$content;
        $fh->flush or die "$tmp: $!\n";
        $fh->sync or die "fsync $tmp: $!\n";
        close($fh) or die "$tmp: $!\n";
        rename($tmp, $dest) or die "rename $tmp: $!\n";
    }
}

# New entries go before the first NIS entry, as shadow-utils keeps them.
sub with_added {
    my ($lines, @new) = @_;
    my @out = @$lines;
    my ($at) = grep { $out[$_] =~ /^[+-]/ } 0 .. $#out;
    splice(@out, $at // scalar(@out), 0, @new);
    return \@out;
}

my @dbs = grep { $_ eq "/etc/passwd" || $_ eq "/etc/group" || -e $_ }
    qw(/etc/group /etc/gshadow /etc/shadow /etc/passwd);
my $ok = eval {
    lock_db($_) for @dbs;
    my %text = map { $_ => slurp($_) } @dbs;
    my (%uid_of, %used_uid, %gid_of, %used_gid, %has);
    for (@{ $text{"/etc/passwd"} }) {
        my @f = split /:/, $_, -1;
        next if @f < 3 || $f[0] =~ /^[+-]/;
        $uid_of{$f[0]} = $f[2];
        $used_uid{$f[2]} = 1;
    }
    for (@{ $text{"/etc/group"} }) {
        my @f = split /:/, $_, -1;
        next if @f < 3 || $f[0] =~ /^[+-]/;
        $gid_of{$f[0]} = $f[2];
        $used_gid{$f[2]} = 1;
    }
    for my $db (grep { exists $text{$_} } "/etc/shadow", "/etc/gshadow") {
        $has{$db}{ (split /:/)[0] // "" } = 1 for @{ $text{$db} };
    }
    my @new = grep { !exists $uid_of{$_} } @want;
    return 1 unless @new;

    my ($lo, $hi) = ($defs{UID_MIN}, $defs{UID_MAX});
    $lo = $defs{GID_MIN} if $defs{GID_MIN} > $lo;
    $hi = $defs{GID_MAX} if $defs{GID_MAX} < $hi;
    my $free = sub { my ($id) = @_; !$used_uid{$id} && !$used_gid{$id} };
    my ($next) = sort { $b <=> $a } grep { $_ >= $lo && $_ <= $hi } keys %used_uid, keys %used_gid;
    $next = defined $next ? $next + 1 : $lo;
    my $alloc = sub {
        $next++ while $next <= $hi && !$free->($next);
        if ($next > $hi) {    # past the top: the lowest free id, as useradd does
            ($next) = grep { $free->($_) } $lo .. $hi;
            defined $next or die "no free uid/gid left in $lo..$hi\n";
        }
        return $next++;
    };
    my $days = int(time() / 86400);
    my (@group, @gshadow, @shadow, @passwd);
    for my $u (@new) {
        my ($uid, $gid);
        if (exists $gid_of{$u}) {    # its group exists (an interrupted run): use it
            $gid = $gid_of{$u};
            die "group $u exists with gid $gid, outside $defs{GID_MIN}..$defs{GID_MAX}\n"
                if $gid < $defs{GID_MIN} || $gid > $defs{GID_MAX};
            $uid = !$used_uid{$gid} && $gid >= $defs{UID_MIN} && $gid <= $defs{UID_MAX}
                ? $gid : $alloc->();
        } else {
            $uid = $gid = $alloc->();
            push @group, "$u:x:$gid:";
            $gid_of{$u} = $gid;
        }
        $used_uid{$uid} = $used_gid{$gid} = 1;
        push @gshadow, "$u:!::" if exists $text{"/etc/gshadow"} && !$has{"/etc/gshadow"}{$u};
        push @shadow, "$u:!:$days:$defs{PASS_MIN_DAYS}:$defs{PASS_MAX_DAYS}:$defs{PASS_WARN_AGE}:::"
            if exists $text{"/etc/shadow"} && !$has{"/etc/shadow"}{$u};
        push @passwd, "$u:x:$uid:$gid:Konbit account:$home{$u}:/usr/sbin/nologin";
    }
    my %add = ("/etc/group" => \@group, "/etc/gshadow" => \@gshadow,
               "/etc/shadow" => \@shadow, "/etc/passwd" => \@passwd);
    for my $db (@dbs) {    # passwd last: the user exists once everything else does
        write_db($db, $text{$db}, with_added($text{$db}, @{ $add{$db} })) if @{ $add{$db} };
    }
    1;
};
my $error = $@;
release();
close $pwd_lock;    # ulckpwdf
die $error unless $ok;
if (-x "/usr/sbin/nscd") { system("/usr/sbin/nscd -i passwd -i group >/dev/null 2>&1"); }

# Every user exists now, in the file and through NSS.
my %now = map { (split /:/)[0] => 1 } @{ slurp("/etc/passwd") };
my @missing = grep { !$now{$_} || !defined getpwnam($_) } @want;
die "not created: @missing\n" if @missing;
"""

# Never follows a symlink a member planted; never overwrites a member's page.
_ENSURE_DIRS = r"""
use strict;
@ARGV = <STDIN>;
chomp @ARGV;
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
        files += [
            ManagedFile(
                f"nginx/site-{s.id}.conf", render("nginx/site.conf.j2", **_vhost_values(s, "nginx"))
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
        files += [
            ManagedFile(
                f"apache2/site-{s.id}.conf",
                render("apache2/site.conf.j2", **_vhost_values(s, "apache2")),
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
