"""Mail hosts: postfix (virtual domains, mailboxes, aliases, submission), dovecot (IMAP,
LMTP, quota, postfix's SASL) and OpenDKIM (signing).

Everything a mailbox or alias changes lives in three postfix maps and one dovecot
passwd-file under the konbit tree, so 10,000 mailboxes cost one reconcile: the maps are
rebuilt with ``postmap`` inside the staged generation and checked with ``postfix check``
and ``doveconf`` before the swap; postfix and dovecot are each reloaded once.  The main
configuration of both services points into the tree once.

DKIM: OpenDKIM (Debian's) is postfix's milter for mail submitted by authenticated users
(port 587) and mail the host sends itself; ``milter_default_action = accept``, so a dead
milter delays no mail (it leaves unsigned).  Its configuration, key table and signing
table are in the tree (``/etc/opendkim.conf`` links there), rendered from
``DesiredState.dkim_keys``; the private keys are made on the host by the panel's key task
(``MailOperations.new_key``) under ``/var/lib/konbit/dkim``, never in the tree, never
sent anywhere.  The milter listens on the loopback only: any local process could ask it
to sign, as it could hand mail to the local sendmail, so a host that runs members' code
(web and mail on one machine) lets that code sign as any of its mail domains.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping, Sequence
from typing import Any, Literal

from provisioners.api import (
    LIVE,
    Command,
    DesiredState,
    DkimKeyView,
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
OPENDKIM_CONF = "mail/opendkim/opendkim.conf"
KEY_TABLE = "mail/opendkim/keys"
SIGNING_TABLE = "mail/opendkim/signing"
INTERNAL_HOSTS = "mail/opendkim/internal-hosts"
DKIM_ROOT = "/var/lib/konbit/dkim"  # <domain>/<selector>.private, opendkim's, 0600
DKIM_BITS = 2048
MILTER_PORT = 8891
MILTER = f"inet:127.0.0.1:{MILTER_PORT}"

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
    # DKIM signing: mail from smtpd (submission) and from the host itself (sendmail).
    # A milter that does not answer lets mail through unsigned rather than hold it.
    "smtpd_milters": MILTER,
    "non_smtpd_milters": MILTER,
    "milter_default_action": "accept",
}

# The submission service (port 587, STARTTLS then SASL through dovecot): members' mail
# clients send here; the SRV record _submission._tcp names it.  In master.cf, set with
# ``postconf -M``/``-P`` only when it says otherwise.
SUBMISSION = "submission inet n - y - - smtpd"
SUBMISSION_PARAMS: Mapping[str, str] = {
    "syslog_name": "postfix/submission",
    "smtpd_tls_security_level": "encrypt",
    "smtpd_tls_auth_only": "yes",
    "smtpd_sasl_auth_enable": "yes",
    "smtpd_sasl_type": "dovecot",
    "smtpd_sasl_path": "private/auth",
    "smtpd_reject_unlisted_recipient": "no",
    "smtpd_relay_restrictions": "permit_sasl_authenticated,reject",
    "smtpd_recipient_restrictions": "permit_sasl_authenticated,reject",
    # A login sends only from its own account's domains (``senders``): one account's
    # mailbox may not send, signed by DKIM, as another account's domain on this host.
    "smtpd_sender_login_maps": f"hash:{LIVE}/mail/postfix/senders",
    "smtpd_sender_restrictions": "reject_sender_login_mismatch",
    "milter_macro_daemon_name": "ORIGINATING",
}

# A map or passwd-file field that holds whitespace, a colon, a comma or a line break could
# add an entry of its own: every value was validated at the API, and is checked again here.
_SAFE_ADDRESS = re.compile(r"[a-z0-9._+=-]*@[a-z0-9.-]+")
_SAFE_HASH = re.compile(r"\{[A-Z0-9-]+\}[A-Za-z0-9$./+=,-]+")
_SAFE_DOMAIN = re.compile(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+")
_SAFE_SELECTOR = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")

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
# Live now (a reload comes with the maps only when they change).
if postfix status >/dev/null 2>&1; then postfix reload >/dev/null 2>&1 || true; fi
"""

# $1: the submission service's master.cf line (which drops its "-o" options); then all
# its "submission/inet/name=value"s.
_SUBMISSION = r"""
set -eu
postconf -M "submission/inet=$1"
shift
postconf -P "$@"
if postfix status >/dev/null 2>&1; then postfix reload >/dev/null 2>&1 || true; fi
"""

# Debian's opendkim (its init script and its systemd unit) reads /etc/opendkim.conf,
# which has no include: it becomes a link into the tree (Debian's own file kept aside).
_OPENDKIM_LINK = r"""
set -eu
if [ -e /etc/opendkim.conf ] && [ ! -L /etc/opendkim.conf ]; then
    mv /etc/opendkim.conf /etc/opendkim.conf.debian
fi
ln -sfn "$1" /etc/opendkim.conf
systemctl enable opendkim >/dev/null 2>&1 || true
systemctl restart opendkim
"""

# A new key for domain $1, selector $2 (both checked against strict patterns): made in a
# directory of its own beside where it goes, then moved in; its public part on stdout.
_NEW_KEY = r"""
set -eu
umask 077
root=/var/lib/konbit/dkim
install -d -o root -g opendkim -m 0750 "$root"
install -d -o opendkim -g opendkim -m 0700 "$root/$1"
key="$root/$1/$2.private"
if [ ! -s "$key" ]; then
    tmp=$(mktemp -d "$root/$1/.new-XXXXXX")
    trap 'rm -rf "$tmp"' EXIT
    opendkim-genkey -b "$3" -d "$1" -s "$2" -D "$tmp"
    chown opendkim:opendkim "$tmp/$2.private"
    chmod 0600 "$tmp/$2.private"
    mv "$tmp/$2.private" "$key"
fi
openssl pkey -in "$key" -pubout -outform DER | base64 -w0
"""

_REMOVE_KEY = r"""
set -eu
rm -f -- "/var/lib/konbit/dkim/$1/$2.private"
rmdir -- "/var/lib/konbit/dkim/$1" 2>/dev/null || true
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
for m in domains mailboxes aliases senders; do
    rm -f "$m.db"    # a hard link to the live generation's map: never write through it
    postmap "hash:$m"
done
postfix check
doveconf -n -c /etc/konbit/live/mail/dovecot.conf >/dev/null
opendkim -n -x /etc/konbit/live/mail/opendkim/opendkim.conf
"""

_FACTS = """
postconf {params} 2>/dev/null || true
if grep -qs '^# Managed by Konbit' /etc/dovecot/dovecot.conf; then echo 'dovecot = konbit'; fi
printf 'master.submission = %s\\n' "$(postconf -M submission/inet 2>/dev/null)"
postconf -P 2>/dev/null | grep '^submission/inet/' || true
if [ "$(readlink /etc/opendkim.conf)" = {link} ]; then echo 'opendkim = konbit'; fi
""".format(params=" ".join(POSTFIX_PARAMS), link=shlex.quote(f"{LIVE}/{OPENDKIM_CONF}"))


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


def _senders(boxes: Sequence[MailboxView], aliases: Sequence[MailAliasView]) -> dict[str, str]:
    """``@domain`` -> the logins that may send from it: every mailbox of the account the
    domain's mail belongs to (a member's mail client may send as any of its addresses)."""
    logins: dict[int, list[str]] = {}
    for b in sorted(boxes, key=_key):
        logins.setdefault(b.account.id, []).append(_safe(b.address, _SAFE_ADDRESS, "address"))
    owners: dict[str, int] = {}
    for box in boxes:
        owners.setdefault(box.domain, box.account.id)
    for alias in aliases:
        owners.setdefault(alias.domain, alias.account.id)
    return {
        _safe(f"@{domain}", _SAFE_ADDRESS, "domain"): ",".join(logins[account])
        for domain, account in owners.items()
        if logins.get(account)
    }


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
            out[key.strip()] = " ".join(value.split())  # master.cf's columns: one space
        elif line.endswith(" ="):  # an empty value
            out[line[:-2].strip()] = ""
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

    def operations(self) -> MailOperations:
        """DKIM keys made on the host, for the panel's key task."""
        return MailOperations()

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
            ManagedFile("mail/postfix/senders", _map(_senders(boxes, aliases))),
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
            *_dkim_files(state.dkim_keys, domains),
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
        # ``postconf -M`` prints the service's line and then its "-o" options.
        service = " ".join(current.get("master.submission", "").split()[:8])
        if service != SUBMISSION or any(
            current.get(f"submission/inet/{k}") != v for k, v in SUBMISSION_PARAMS.items()
        ):
            params = [f"submission/inet/{k}={v}" for k, v in SUBMISSION_PARAMS.items()]
            steps.append(
                Step(
                    "postfix master.cf: the submission service",
                    ("sh", "-c", _SUBMISSION, "konbit", SUBMISSION, *params),
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
        if current.get("opendkim") != "konbit":
            steps.append(
                Step(
                    "/etc/opendkim.conf is the konbit configuration",
                    ("sh", "-c", _OPENDKIM_LINK, "konbit", f"{LIVE}/{OPENDKIM_CONF}"),
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
        # OpenDKIM reads its configuration and tables again on SIGUSR1 (its reload).
        if any(p.startswith("mail/opendkim/") for p in changed):
            out.append(["systemctl", "reload-or-restart", "opendkim"])
        if any(p.startswith("mail/postfix/") for p in changed):
            out.append(["systemctl", "reload-or-restart", "postfix"])
        return out


def _key(box: MailboxView) -> str:
    return box.address


def _destinations(alias: MailAliasView) -> str:
    return ",".join(_safe(d, _SAFE_ADDRESS, "destination") for d in alias.destinations)


def _dkim_files(keys: Sequence[DkimKeyView], mail_domains: set[str]) -> list[ManagedFile]:
    """OpenDKIM's configuration and tables: each zone's key, and each mail domain signed
    with the key of its zone (the domain itself or the nearest parent that has one)."""
    by_zone = {
        _safe(k.domain, _SAFE_DOMAIN, "DKIM domain"): _safe(
            k.selector, _SAFE_SELECTOR, "DKIM selector"
        )
        for k in keys
    }
    key_table = "".join(
        f"{zone} {zone}:{selector}:{key_path(zone, selector)}\n"
        for zone, selector in sorted(by_zone.items())
    )
    signing = []
    for domain in sorted(mail_domains):
        labels = domain.split(".")
        zone = next(
            (z for z in (".".join(labels[i:]) for i in range(len(labels))) if z in by_zone), None
        )
        if zone is not None:
            signing.append(f"*@{_safe(domain, _SAFE_DOMAIN, 'mail domain')} {zone}\n")
    return [
        ManagedFile(
            OPENDKIM_CONF,
            render(
                "mail/opendkim.conf.j2",
                port=MILTER_PORT,
                key_table=f"{LIVE}/{KEY_TABLE}",
                signing_table=f"{LIVE}/{SIGNING_TABLE}",
                internal_hosts=f"{LIVE}/{INTERNAL_HOSTS}",
            ),
        ),
        ManagedFile(KEY_TABLE, key_table.encode()),
        ManagedFile(SIGNING_TABLE, "".join(signing).encode()),
        ManagedFile(INTERNAL_HOSTS, b"127.0.0.1\n::1\n"),
    ]


def key_path(domain: str, selector: str) -> str:
    """Where a DKIM private key lives on its mail host (outside the tree: never diffed,
    never recorded, never sent)."""
    return f"{DKIM_ROOT}/{domain}/{selector}.private"


class MailOperations:
    """What the mail plugin offers the panel's tasks: DKIM keys (``DkimKeys``)."""

    def new_key(self, domain: str, selector: str) -> Command:
        return Command.script(
            _NEW_KEY,
            _safe(domain, _SAFE_DOMAIN, "DKIM domain"),
            _safe(selector, _SAFE_SELECTOR, "DKIM selector"),
            str(DKIM_BITS),
        )

    def remove_key(self, domain: str, selector: str) -> Command:
        return Command.script(
            _REMOVE_KEY,
            _safe(domain, _SAFE_DOMAIN, "DKIM domain"),
            _safe(selector, _SAFE_SELECTOR, "DKIM selector"),
        )
