"""Members' SFTP logins on web hosts: ProFTPD's mod_sftp with virtual users.

Why ProFTPD and not OpenSSH's internal-sftp (see DESIGN.md, "SFTP"):

* A login is a line of a file, not a unix user: every login of every account is rendered
  into the konbit tree (``sftp/passwd``, ``sftp/keys/<login>``), diffed, validated by
  ``proftpd -t`` and swapped like any other managed file.  ProFTPD reads the user file and
  the keys at each login, so a new login needs no reload and no ``useradd``.
* A virtual user runs as the account's own uid, so the files a member uploads belong to
  the account's unix user (PHP-FPM's pool user) whatever login put them there; several
  logins share one account.
* ProFTPD chroots a login into any directory (a site's document root, or the whole home);
  OpenSSH's ``ChrootDirectory`` needs every component owned by root and unwritable by
  the member, which the account's home (owned by the account) is not.
* It is its own daemon on its own port: a member-facing configuration can never lock the
  panel out of the host's management sshd.
* ``HiddenStores`` writes an upload under a hidden name renamed into place only once
  complete, so an upload refused by the file system (the account's disk quota: EDQUOT,
  which mod_sftp answers "Quota exceeded") leaves the previous file as it was.
  ProFTPD's own ``mod_quotatab`` is not used: in 1.3.8 (Debian 12) it does not fail
  SFTP writes (proftpd#2098, fixed in 1.3.9) and, measured here, deletes the file after
  an over-quota upload completes, the previous version included.

ProFTPD serves SFTP only.  A login staff allow a shell (``shell``, a staff field) also
opens the host's own sshd as the account's unix user, with its keys only: an sshd drop-in
makes members of group ``konbit-shell`` read their keys from the konbit tree (a file
the member cannot write), and the account's user gets a login shell while it has one.
"""

from __future__ import annotations

import base64
import binascii
import re
import shlex
import struct
from collections.abc import Sequence
from typing import Annotated, Literal

import bcrypt
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from provisioners.api import (
    LIVE,
    DesiredState,
    Fact,
    Facts,
    HostView,
    Item,
    ManagedFile,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Step,
    lines,
)
from provisioners.templating import render
from provisioners.web.common import docroot, home

KIND = "sftp_login"
PRIVATE = "/etc/konbit/private/sftp"
HOST_KEY = f"{PRIVATE}/host_ecdsa_key"
DEFAULTS = "/etc/default/proftpd"
DEFAULTS_TEXT = f"# Managed by Konbit.\nCONFIG_FILE={LIVE}/sftp/proftpd.conf\n"
SHELL_GROUP = "konbit-shell"
SSHD_DROPIN = "/etc/ssh/sshd_config.d/konbit-shell.conf"
SSHD_DROPIN_TEXT = f"""\
# Managed by Konbit: accounts' shell logins read their keys from the konbit tree only.
Match Group {SHELL_GROUP}
    AuthorizedKeysFile {LIVE}/sftp/shell/%u
    PasswordAuthentication no
    KbdInteractiveAuthentication no
    AllowTcpForwarding no
    AllowAgentForwarding no
    AllowStreamLocalForwarding no
    X11Forwarding no
    PermitTunnel no
Match all
"""

_BCRYPT = re.compile(r"^\$2b\$(0[4-9]|1[0-5])\$[./A-Za-z0-9]{53}$")
_KEY_TYPES = (
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
)
_KEY = re.compile(r"^(\S+) ([A-Za-z0-9+/]+={0,2})(?: [\x21-\x7e][\x20-\x7e]{0,199})?$")
# bcrypt's own cost: about 50 ms a hash here, paid once per password change.
_ROUNDS = 10


def key_blob(line: str) -> tuple[str, bytes]:
    """An OpenSSH public key line's type and blob, checked against each other."""
    match = _KEY.fullmatch(line.strip())
    if not match:
        raise ValueError("an SSH public key is one line: 'TYPE BASE64 [comment]'")
    kind, data = match.group(1), match.group(2)
    if kind not in _KEY_TYPES:
        raise ValueError(f"key type {kind} is not accepted: use one of {', '.join(_KEY_TYPES)}")
    try:
        blob = base64.b64decode(data, validate=True)
    except binascii.Error:
        raise ValueError("the key's base64 does not decode") from None
    (length,) = struct.unpack(">I", blob[:4]) if len(blob) >= 4 else (0,)
    if blob[4 : 4 + length].decode("ascii", "replace") != kind or len(blob) < 4 + length + 16:
        raise ValueError(f"the key's data is not an {kind} key")
    return kind, blob


def check_key(line: str) -> str:
    kind, blob = key_blob(line)
    return f"{kind} {base64.b64encode(blob).decode()}"  # the comment is not kept


def check_password_hash(value: str) -> str:
    if not _BCRYPT.fullmatch(value):
        raise ValueError("must be a bcrypt hash ($2b$); send 'password' to set a new one")
    return value


def check_password(value: str) -> str:
    if not 10 <= len(value) <= 128:
        raise ValueError("must be 10 to 128 characters")
    if any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("must not contain control characters")
    return value


PublicKey = Annotated[str, AfterValidator(check_key)]


class SftpLogin(BaseModel):
    """One SFTP login of an account, attached to one of its sites (whose host serves it)."""

    model_config = ConfigDict(extra="forbid")

    scope: Literal["site", "home"] = Field(
        default="site",
        title="Folder",
        description="'site': the login sees the site's document root only; "
        "'home': the account's whole home (every site of it on this host)",
    )
    password: Annotated[str, AfterValidator(check_password)] | None = Field(
        default=None,
        exclude=True,
        title="Password",
        description="10 to 128 characters; kept only as a hash, never shown",
        json_schema_extra={"writeOnly": True},
    )
    password_hash: Annotated[str, AfterValidator(check_password_hash)] | None = Field(
        default=None, description="set by the panel from 'password'; never shown"
    )
    ssh_keys: list[PublicKey] = Field(
        default_factory=list,
        max_length=20,
        title="SSH public keys",
        description="OpenSSH public keys, one per line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)",
    )
    enabled: bool = Field(default=True, title="Enabled")
    shell: bool = Field(
        default=False,
        title="Shell",
        description="staff only: the login's keys also open an SSH shell on the host as the "
        "account's unix user (not shut in a folder)",
    )

    @model_validator(mode="after")
    def _hash_and_require_a_way_in(self) -> SftpLogin:
        if self.password is not None:
            salt = bcrypt.gensalt(rounds=_ROUNDS)
            self.password_hash = bcrypt.hashpw(self.password.encode(), salt).decode()
            self.password = None
        if self.password_hash is None and not self.ssh_keys:
            raise ValueError("give a password or at least one SSH public key")
        if self.shell and not self.ssh_keys:
            raise ValueError("a shell opens with an SSH key only: add one")
        return self


class SftpSettings(BaseModel):
    sftp_port: int = Field(
        default=2222, ge=1, le=65535, description="web hosts: the port members' SFTP listens on"
    )


def rfc4716(key: str) -> str:
    """ProFTPD reads authorized keys in RFC 4716 form, not OpenSSH's one-line form."""
    data = key.split(" ", 1)[1]
    body = "\n".join(data[i : i + 70] for i in range(0, len(data), 70))
    return f"---- BEGIN SSH2 PUBLIC KEY ----\n{body}\n---- END SSH2 PUBLIC KEY ----\n"


SETUP = Fact(
    "sftp_setup",
    f"[ -s {HOST_KEY} ] && echo hostkey\n"
    f"grep -qxF 'CONFIG_FILE={LIVE}/sftp/proftpd.conf' {DEFAULTS} 2>/dev/null && echo defaults\n"
    '[ -s /run/proftpd.pid ] && kill -0 "$(cat /run/proftpd.pid)" 2>/dev/null && echo running\n'
    "true",
    lines,
)


class Sftp(Provisioner):
    """Members' SFTP logins: one ProFTPD on each web host that carries any."""

    name = "sftp"
    roles = ("web",)
    settings = SftpSettings
    kinds = (
        ObjectKind(
            KIND,
            "web",
            spec=SftpLogin,
            placement="site",
            title="SFTP login",
            staff_fields=("shell",),
        ),
    )
    facts = (SETUP,)
    messages = {
        "fr": {
            "SFTP login": "accès SFTP",
            "SFTP logins": "accès SFTP",
            "Folder": "Dossier",
            "'site': the login sees the site's document root only; 'home': the account's "
            "whole home (every site of it on this host)": "« site » : l'accès ne voit que "
            "la racine du site ; « home » : tout le dossier du compte (tous ses sites sur "
            "cet hôte)",
            "Password": "Mot de passe",
            "10 to 128 characters; kept only as a hash, never shown": "10 à 128 caractères ; "
            "seule son empreinte est gardée, jamais affichée",
            "SSH public keys": "Clés publiques SSH",
            "OpenSSH public keys, one per line (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)": "Clés "
            "publiques OpenSSH, une par ligne (ssh-ed25519, ecdsa-sha2-*, ssh-rsa)",
            "Enabled": "Actif",
            "Shell": "Shell",
            "staff only: the login's keys also open an SSH shell on the host as the "
            "account's unix user (not shut in a folder)": "réservé à l'équipe : les clés "
            "de l'accès ouvrent aussi un shell SSH sur l'hôte, comme utilisateur unix du "
            "compte (sans être enfermé dans un dossier)",
            "give a password or at least one SSH public key": "donnez un mot de passe ou au "
            "moins une clé publique SSH",
        }
    }

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        """The sshd drop-in for shell logins; nobody is in its group until staff allow a
        shell, and sshd reads it at its next reload (``reload``)."""
        return [(SSHD_DROPIN, SSHD_DROPIN_TEXT.encode())]

    def _shell_users(self, state: DesiredState) -> set[str]:
        return {i.account.unix_user for i, _ in self._logins(state) if i.spec.shell}

    def _logins(self, state: DesiredState) -> list[tuple[Item[SftpLogin], str]]:
        """Live, enabled logins with the directory each one is shut in."""
        sites = {s.id: s for s in state.live_sites()}
        out = []
        for item in state.items(KIND, SftpLogin):
            site = sites.get(item.site_id or 0)
            if item.deleting or site is None or not item.spec.enabled:
                continue
            root = home(item.account.slug) if item.spec.scope == "home" else docroot(site)
            out.append((item, root))
        return out

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        logins = self._logins(state)
        if not logins and not state.items(KIND, SftpLogin):
            return []
        port = state.host.settings_as(SftpSettings).sftp_port
        # ProFTPD names a virtual user's uid and gid by number, which only the host knows
        # (the account's user may be made by this very reconcile): the checker builds
        # ``passwd`` and ``group`` from this list in the staged tree (see ``derived``).
        users = "".join(
            f"{i.name}\t{i.spec.password_hash or '!'}\t{i.account.unix_user}\t{root}\t{i.id}\n"
            for i, root in logins
        )
        files = [
            ManagedFile(
                "sftp/proftpd.conf",
                render("sftp/proftpd.conf.j2", live=LIVE, port=port, host_key=HOST_KEY),
            ),
            ManagedFile("sftp/users", users.encode(), mode=0o600),
        ]
        # sshd's keys of shell logins, by unix user; ``restrict`` with a pty: no forwarding.
        shells: dict[str, list[str]] = {}
        for i, _ in logins:
            if i.spec.shell:
                shells.setdefault(i.account.unix_user, []).extend(
                    f"restrict,pty {k} konbit-sftp-login-{i.id}" for k in i.spec.ssh_keys
                )
        files += [
            ManagedFile(f"sftp/shell/{user}", "".join(f"{k}\n" for k in keys).encode())
            for user, keys in sorted(shells.items())
        ]
        # Keys by login name (ProFTPD's %u).
        files += [
            ManagedFile(
                f"sftp/keys/{i.name}",
                "".join(rfc4716(k) for k in i.spec.ssh_keys).encode(),
                mode=0o600,
            )
            for i, _ in logins
            if i.spec.ssh_keys
        ]
        return files

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Once per host: ProFTPD's own host key, and Debian's service pointed at the
        konbit configuration."""
        seen = facts[SETUP]
        steps = self._shell_steps(state, seen)
        if not self._logins(state):
            return steps
        if "hostkey" not in seen:
            steps.append(
                Step(
                    "SFTP host key",
                    ("sh", "-c", _HOST_KEY_SCRIPT, "konbit", PRIVATE, HOST_KEY),
                )
            )
        if "defaults" not in seen:
            steps.append(
                Step(
                    "ProFTPD reads the konbit configuration",
                    ("sh", "-c", 'cat > "$1.new" && mv -f "$1.new" "$1"', "konbit", DEFAULTS),
                    stdin=DEFAULTS_TEXT.encode(),
                )
            )
        if "running" not in seen and "sftp/proftpd.conf" not in changed:
            # Started by the reload when its configuration changes; else after a reboot
            # of a host whose init does not start it, or after a crash.
            steps.append(Step("start ProFTPD", ("systemctl", "start", "proftpd"), phase="after"))
        return steps

    def _shell_steps(self, state: DesiredState, seen: frozenset[str]) -> list[Step]:
        """Accounts with a shell login: a login shell and the group sshd's drop-in
        matches; accounts without one any more: back to nologin, out of the group."""
        want = self._shell_users(state)
        have = {line.split(" ", 1)[1] for line in seen if line.startswith("shell ")}
        steps = []
        if want - have:
            steps.append(
                Step(
                    f"shells for {', '.join(sorted(want - have))}",
                    ("sh", "-c", _GIVE_SHELL, "konbit", SHELL_GROUP, *sorted(want - have)),
                )
            )
        if have - want:
            steps.append(
                Step(
                    f"no more shell for {', '.join(sorted(have - want))}",
                    ("sh", "-c", _TAKE_SHELL, "konbit", SHELL_GROUP, *sorted(have - want)),
                )
            )
        return steps

    def derived(self, path: str) -> bool:
        return path in ("sftp/passwd", "sftp/group")

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        if not state.items(KIND, SftpLogin):
            return []
        # Runs with the staged tree in place of the live one: builds its user files, then
        # ``proftpd -t`` parses the staged configuration, which names them.
        checks = [["sh", "-c", _CHECK, "konbit", f"{LIVE}/sftp"]]
        if self._shell_users(state):
            checks.append(["sshd", "-t"])
        return checks

    def blame(self, message: str) -> set[ObjectRef]:
        return {(KIND, int(m)) for m in re.findall(r"sftp login (\d+):", message)}

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        """Logins and keys are read at each login: only the daemon's own configuration
        needs the service touched, and then a restart (a reload would make a daemon that
        Debian started re-read Debian's configuration, not this one)."""
        ssh = (
            [["systemctl", "reload", "ssh"]]
            if any(p.startswith("sftp/shell/") for p in changed)
            else []
        )
        if "sftp/proftpd.conf" not in changed:
            return ssh
        if not self._logins(state):
            return [*ssh, ["systemctl", "stop", "proftpd"]]
        port = state.host.settings_as(SftpSettings).sftp_port
        return [*ssh, ["sh", "-c", _RESTART, "konbit", str(port)]]


# Done once the daemon listens: a login made "active" by this reconcile works at once.
_RESTART = r"""
systemctl restart proftpd || exit
i=0
until ss -Hltn "sport = :$1" | grep -q .; do
    i=$((i + 1))
    if [ "$i" -gt 100 ]; then echo "ProFTPD does not listen on port $1 after 5 s" >&2; exit 1; fi
    sleep 0.05
done
"""

# $1: the group; then unix users.  usermod edits passwd and group under their locks.
_GIVE_SHELL = r"""
set -eu
group="$1"; shift
getent group "$group" >/dev/null || groupadd --system "$group"
for u; do usermod --shell /bin/bash --append --groups "$group" -- "$u"; done
"""

_TAKE_SHELL = r"""
set -eu
group="$1"; shift
for u; do
    gpasswd --delete "$u" "$group" >/dev/null
    usermod --shell /usr/sbin/nologin -- "$u"
done
"""

_HOST_KEY_SCRIPT = r"""
set -eu
umask 077
mkdir -p -m 0700 -- "$1"
[ -s "$2" ] || ssh-keygen -q -t ecdsa -b 256 -m PEM -N '' -C konbit-sftp -f "$2"
"""


# The user and group files ProFTPD reads, from ``users`` (login, hash, unix user, directory,
# object id), with each account's uid and gid as this host has them.  Written beside and
# renamed over: the staged tree shares its unchanged files with the live one (hard links).
_USER_FILES = r"""
use strict;
my $dir = shift;
open(my $in, "<", "$dir/users") or die "$dir/users: $!\n";
# Every user read once (getpwnam scans /etc/passwd at each call: 2 s at 10,000 logins).
my %pw;
while (my @entry = getpwent()) { $pw{$entry[0]} = [@entry] unless exists $pw{$entry[0]}; }
endpwent();
my (@passwd, %members, %gid_of);
while (my $line = <$in>) {
    chomp $line;
    my ($login, $hash, $user, $root, $id) = split /\t/, $line;
    my @pw = @{ $pw{$user} // [] };
    die "sftp login $id: no unix user $user on this host\n" unless @pw;
    die "sftp login $id: $root is not a directory\n" unless -d $root && !-l $root;
    push @passwd, "$login:$hash:$pw[2]:$pw[3]:Konbit SFTP login $id:$root:/usr/sbin/nologin\n";
    push @{ $members{$user} }, $login;
    $gid_of{$user} = $pw[3];
}
close $in;
for my $pair (["passwd", join("", @passwd)],
              ["group", join("", map { "$_:x:$gid_of{$_}:" . join(",", @{ $members{$_} }) . "\n" }
                                  sort keys %members)]) {
    my ($name, $text) = @$pair;
    my $tmp = "$dir/.$name.new";
    umask 077;
    open(my $out, ">", $tmp) or die "$tmp: $!\n";
    print $out $text;
    close($out) or die "$tmp: $!\n";
    rename($tmp, "$dir/$name") or die "rename $tmp: $!\n";
}
"""

_CHECK = f'perl -e {shlex.quote(_USER_FILES)} "$1" && exec proftpd -t -c "$1/proftpd.conf" 2>&1'
