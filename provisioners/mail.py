"""Mail hosts: postfix (virtual domains, mailboxes, aliases) and dovecot (IMAP, LMTP, quota).

Everything a mailbox or alias changes lives in three postfix maps and one dovecot
passwd-file under the konbit tree, so 10,000 mailboxes cost one reconcile: the maps are
rebuilt with ``postmap`` inside the staged generation and checked with ``postfix check``
and ``doveconf`` before the swap; postfix and dovecot are each reloaded once.  The main
configuration of both services points into the tree once.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from provisioners.api import (
    LIVE,
    DesiredState,
    Fact,
    Facts,
    MailAliasView,
    MailboxView,
    ManagedFile,
    Metric,
    ObjectKind,
    Provisioner,
    Sample,
    Step,
)
from provisioners.templating import render

VMAIL = "vmail"
VMAIL_ROOT = "/var/vmail"
ARCHIVE_DIR = "/var/lib/konbit/archive/mail"
QUOTA_STATUS_PORT = 12340
MAPS = ("domains", "mailboxes", "aliases")
USERS = "mail/dovecot/users"
DOVECOT_CONF = "mail/dovecot.conf"
DOVECOT_INCLUDE = f"# Managed by Konbit.\n!include {LIVE}/{DOVECOT_CONF}\n"

# What postfix's main.cf must say; set with ``postconf -e`` only when it says otherwise.
POSTFIX_PARAMS: Mapping[str, str] = {
    "mydestination": "localhost",
    "inet_interfaces": "all",
    "virtual_mailbox_domains": f"hash:{LIVE}/mail/postfix/domains",
    "virtual_mailbox_maps": f"hash:{LIVE}/mail/postfix/mailboxes",
    "virtual_alias_maps": f"hash:{LIVE}/mail/postfix/aliases",
    "virtual_transport": "lmtp:unix:private/dovecot-lmtp",
    "smtpd_recipient_restrictions": (
        "permit_mynetworks, reject_unauth_destination, "
        f"check_policy_service inet:127.0.0.1:{QUOTA_STATUS_PORT}"
    ),
}

# A map or passwd-file field that holds whitespace, a colon, a comma or a line break could
# add an entry of its own: every value was validated at the API, and is checked again here.
_SAFE_ADDRESS = re.compile(r"[a-z0-9._+=-]*@[a-z0-9.-]+")
_SAFE_HASH = re.compile(r"\{[A-Z0-9-]+\}[A-Za-z0-9$./+=,-]+")

_VMAIL_USER = r"""
set -eu
getent group vmail >/dev/null || groupadd --system vmail
getent passwd vmail >/dev/null || useradd --system --gid vmail --home-dir /var/vmail \
    --no-create-home --shell /usr/sbin/nologin vmail
install -d -o vmail -g vmail -m 0770 /var/vmail
install -d -o root -g root -m 0700 /var/lib/konbit/archive/mail
"""

_POSTCONF = r"""
set -eu
postconf -e "$@"
# Postfix will not read a main.cf younger than a second (it sleeps until it is older).
touch -d '-2 seconds' /etc/postfix/main.cf
"""

_DOVECOT_INCLUDE = r"""
set -eu
if [ -e /etc/dovecot/dovecot.conf ] && ! grep -q '^# Managed by Konbit' /etc/dovecot/dovecot.conf
then
    mv /etc/dovecot/dovecot.conf /etc/dovecot/dovecot.conf.debian
fi
printf '%s' "$1" > /etc/dovecot/dovecot.conf.konbit-new
mv -f /etc/dovecot/dovecot.conf.konbit-new /etc/dovecot/dovecot.conf
systemctl reload-or-restart dovecot
"""

# Before the address leaves the maps (and again after, for a message that slipped in):
# the Maildir moves to the archive, never deleted.
_ARCHIVE = r"""
set -eu
src="/var/vmail/$1/$2"
[ -d "$src" ] || exit 0
dest="/var/lib/konbit/archive/mail/$1"
install -d -m 0700 "$dest"
mv -T -- "$src" "$dest/$2-$(date -u +%Y%m%dT%H%M%SZ)-$3"
"""

# Runs in the staged tree (bind-mounted over the live one): build every map, then check.
_CHECK = r"""
set -eu
cd /etc/konbit/live/mail/postfix
for m in domains mailboxes aliases; do
    rm -f "$m.db"    # a hard link to the live generation's map: never write through it
    postmap "hash:$m"
done
postfix check
doveconf -n -c /etc/konbit/live/mail/dovecot.conf >/dev/null
"""

_FACTS = """
postconf {params} 2>/dev/null || true
if grep -qs '^# Managed by Konbit' /etc/dovecot/dovecot.conf; then echo 'dovecot = konbit'; fi
""".format(params=" ".join(POSTFIX_PARAMS))


# Each mailbox's size and message count: Maildir file names carry the size (",S=1234"),
# so a readdir of cur/ and new/ in every folder is enough, with no stat per message.
_MAILDIR_USAGE = r"""
use strict;
use warnings;
while (my $spec = <STDIN>) {
    chomp $spec;
    my ($id, $root) = split /\t/, $spec, 2;
    my ($bytes, $count) = (0, 0);
    my @dirs = ($root);
    while (defined(my $dir = shift @dirs)) {
        opendir(my $dh, $dir) or next;
        for my $entry (readdir $dh) {
            next if $entry eq '.' || $entry eq '..';
            my $path = "$dir/$entry";
            if ($entry eq 'cur' || $entry eq 'new') {
                opendir(my $mh, $path) or next;
                for my $mail (readdir $mh) {
                    next if $mail =~ /^\./;
                    $count++;
                    $bytes += $mail =~ /,S=(\d+)/ ? $1 : (-s "$path/$mail" // 0);
                }
                closedir $mh;
            } elsif ($entry =~ /^\./ && -d $path) {
                push @dirs, $path;
            }
        }
        closedir $dh;
    }
    print "$id\t$bytes\t$count\n";
}
"""


def maildir(box: MailboxView) -> str:
    return f"{VMAIL_ROOT}/{box.domain}/{box.local_part}/Maildir"


def _safe(value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        raise ValueError(f"refusing to write {what} {value!r} into a mail map")
    return value


def _map(entries: Mapping[str, str]) -> bytes:
    return "".join(f"{k} {v}\n" for k, v in sorted(entries.items())).encode()


def _users_line(box: MailboxView) -> str:
    address = _safe(box.address, _SAFE_ADDRESS, "address")
    password = _safe(box.password_hash, _SAFE_HASH, "password hash")
    extra = f"userdb_quota_rule=*:storage={int(box.quota_mb)}M"
    if not box.enabled:
        extra += " nologin=y"  # disabled: mail still arrives, nobody logs in
    return f"{address}:{password}::::::{extra}\n"


def _postconf(text: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(" = ")
        if sep:
            out[key.strip()] = value.strip()
    return out


POSTCONF = Fact("mail_postconf", _FACTS, _postconf)


class Mail(Provisioner):
    """Postfix + dovecot for the mailboxes and aliases of a mail host."""

    name = "mail"
    roles = ("mail",)
    kinds = (
        ObjectKind("mailbox", "mail", title="mailbox"),
        ObjectKind("mail_alias", "mail", title="mail alias"),
    )
    metrics = (
        Metric("mail_bytes", "mail", storage_of="mailbox"),
        Metric("mail_messages", "mail"),
    )
    facts = (POSTCONF,)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        boxes = [b for b in state.mailboxes if not b.deleting]
        aliases = [a for a in state.mail_aliases if not a.deleting]
        domains = {b.domain for b in boxes} | {a.domain for a in aliases}
        alias_map = {
            # A catch-all (@domain) would also swallow the domain's mailboxes: each
            # mailbox maps to itself, and the exact entry wins over the catch-all.
            **{b.address: b.address for b in boxes},
            **{_safe(a.address, _SAFE_ADDRESS, "alias"): _destinations(a) for a in aliases},
        }
        return [
            ManagedFile("mail/postfix/domains", _map(dict.fromkeys(domains, "OK"))),
            ManagedFile(
                "mail/postfix/mailboxes",
                _map({_safe(b.address, _SAFE_ADDRESS, "address"): "OK" for b in boxes}),
            ),
            ManagedFile("mail/postfix/aliases", _map(alias_map)),
            # Password hashes: readable by dovecot's auth process only (it runs as dovecot).
            ManagedFile(
                USERS,
                "".join(_users_line(b) for b in sorted(boxes, key=_key)).encode(),
                0o640,
                "dovecot",
            ),
            ManagedFile(
                DOVECOT_CONF,
                render(
                    "mail/dovecot.conf.j2",
                    ssl_cert="/etc/dovecot/private/dovecot.pem",
                    ssl_key="/etc/dovecot/private/dovecot.key",
                    vmail=VMAIL,
                    vmail_root=VMAIL_ROOT,
                    users=f"{LIVE}/{USERS}",
                    quota_status_port=QUOTA_STATUS_PORT,
                ),
            ),
        ]

    def derived(self, path: str) -> bool:
        return path.startswith("mail/postfix/") and path.endswith(".db")

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        current = facts[POSTCONF]
        steps: list[Step] = []
        if VMAIL not in facts.users:
            steps.append(Step("vmail user and /var/vmail", ("sh", "-c", _VMAIL_USER)))
        wrong = [f"{k}={v}" for k, v in POSTFIX_PARAMS.items() if current.get(k) != v]
        if wrong:
            steps.append(
                Step(
                    f"postfix main.cf: {', '.join(w.partition('=')[0] for w in wrong)}",
                    ("sh", "-c", _POSTCONF, "konbit", *wrong),
                )
            )
        phases: tuple[Literal["before"], Literal["after"]] = ("before", "after")
        for box in state.mailboxes:
            if box.deleting:
                for phase in phases:
                    steps.append(
                        Step(
                            f"archive the mail of {box.address}",
                            (
                                "sh",
                                "-c",
                                _ARCHIVE,
                                "konbit",
                                box.domain,
                                box.local_part,
                                f"mailbox{box.id}-{phase}",
                            ),
                            phase=phase,
                            object_ids=(("mailbox", box.id),),
                        )
                    )
        if current.get("dovecot") != "konbit":
            steps.append(
                Step(
                    "dovecot.conf includes the konbit configuration",
                    ("sh", "-c", _DOVECOT_INCLUDE, "konbit", DOVECOT_INCLUDE),
                    phase="after",
                )
            )
        return steps

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        return [["sh", "-c", _CHECK]]

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        boxes = [b for b in state.mailboxes if not b.deleting]
        if not boxes:
            return None
        spec = "".join(f"{b.id}\t{maildir(b)}\n" for b in boxes)
        return f"printf '%s' {shlex.quote(spec)} | perl -e {shlex.quote(_MAILDIR_USAGE)}"

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        samples: list[Sample] = []
        for line in output.splitlines():
            box_id, size, count = line.split("\t")
            samples.append(Sample(("mailbox", int(box_id)), "mail_bytes", int(size)))
            samples.append(Sample(("mailbox", int(box_id)), "mail_messages", int(count)))
        return samples, dict(cursor)

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        out: list[list[str]] = []
        # Dovecot notices a new users file by itself, but only by mtime and size at most
        # once a second: a password changed twice in a second could stay stale. A reload
        # starts fresh auth processes and leaves open IMAP sessions alone (a login in
        # flight at that instant fails and is retried by the client). Dovecot first: a new
        # mailbox can log in before postfix has its maps.
        if DOVECOT_CONF in changed or USERS in changed:
            out.append(["systemctl", "reload-or-restart", "dovecot"])
        if any(p.startswith("mail/postfix/") for p in changed):
            out.append(["systemctl", "reload-or-restart", "postfix"])
        return out


def _key(box: MailboxView) -> str:
    return box.address


def _destinations(alias: MailAliasView) -> str:
    return ",".join(_safe(d, _SAFE_ADDRESS, "destination") for d in alias.destinations)
