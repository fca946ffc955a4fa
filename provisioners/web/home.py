"""Accounts' unix users, homes and document roots on web hosts; archives on delete."""

from __future__ import annotations

import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from provisioners.api import (
    DesiredState,
    Facts,
    ManagedFile,
    Metric,
    ObjectKind,
    Provisioner,
    Sample,
    Step,
)
from provisioners.templating import static
from provisioners.web.common import (
    ACME_ROOT,
    ARCHIVE,
    ARCHIVE_DIR,
    LOG_DIR,
    WEB_DIRS,
    WWW_ROOT,
    WebSettings,
    access_log,
    docroot,
    home,
    host_keys,
    key_dir,
    site_paths,
)
from provisioners.web.operations import WebOperations


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

    def operations(self) -> WebOperations:
        """Document roots, site keys and backup files for the panel's tasks."""
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
                            ARCHIVE,
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
        keys = host_keys(facts)
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


# A member's uploaded key, from stdin into the site's key directory (root only), atomically.
_INSTALL_KEY = r"""
set -eu
umask 077
mkdir -p -m 0700 -- "$1"
chmod 0700 -- "$(dirname "$1")" "$1"
cat > "$1/.$2.new"
mv -f -- "$1/.$2.new" "$1/$2"
"""




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
