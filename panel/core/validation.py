"""Strict allow-list checks for every value that may reach a host.

Config files (nginx, postfix, dovecot) have no escaping, so a value is safe only if it
matches a pattern with no room for a quote, a space, a semicolon, a newline or a slash
where none belongs.  Each check raises ``ValueError`` with a sentence a member can act on;
pydantic turns it into a 422 naming the field.
"""

from __future__ import annotations

import base64
import ipaddress
import re
import unicodedata
from typing import Annotated

import idna
from pydantic import AfterValidator, BeforeValidator, StringConstraints

# The checks plugins' settings models share live with the plugin contract.
from provisioners.api.values import _LABEL_RE as _LABEL_RE
from provisioners.api.values import PHP_VERSION_RE as PHP_VERSION_RE
from provisioners.api.values import HostAddress as HostAddress
from provisioners.api.values import PhpVersion as PhpVersion
from provisioners.api.values import _must_be_str as _must_be_str
from provisioners.api.values import check_host_address as check_host_address
from provisioners.api.values import check_php_version as check_php_version
from provisioners.api.values import check_text as check_text

Text = Annotated[str, BeforeValidator(_must_be_str)]
"""Any text field: no control or invisible characters."""

DisplayName = Annotated[
    str,
    BeforeValidator(_must_be_str),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
]

# -- reserved names ----------------------------------------------------------------------

RESERVED_UNIX_NAMES = frozenset(
    [
        "root",
        "daemon",
        "bin",
        "sys",
        "sync",
        "games",
        "man",
        "lp",
        "mail",
        "news",
        "uucp",
        "proxy",
        "www-data",
        "backup",
        "list",
        "irc",
        "gnats",
        "nobody",
        "nogroup",
        "_apt",
        "messagebus",
        "sshd",
        "postfix",
        "dovecot",
        "dovenull",
        "mysql",
        "mariadb",
        "postgres",
        "postgresql",
        "mailman",
        "mailman3",
        "mlmmj",
        "vmail",
        "nginx",
        "apache",
        "apache2",
        "php",
        "php-fpm",
        "redis",
        "memcache",
        "admin",
        "administrator",
        "konbit",
        "www",
        "ftp",
        "staff",
        "operator",
        "debian",
        "ubuntu",
        "sudo",
        "adm",
        "wheel",
        "shadow",
        "utmp",
        "tty",
        "disk",
        "kmem",
        "dialout",
        "cdrom",
        "floppy",
        "tape",
        "audio",
        "video",
        "plugdev",
        "users",
        "systemd-network",
        "systemd-resolve",
        "systemd-timesync",
        "tss",
        "uuidd",
        "tcpdump",
        "ntp",
        "chrony",
        "opendkim",
        "clamav",
        "amavis",
        "spamd",
        "debian-sys-maint",
        "test",
        "demo",
    ]
)
RESERVED_LOCAL_PARTS = frozenset(
    ["root", "postmaster", "mailer-daemon", "nobody", "daemon", "mailman", "www-data", "vmail"]
)
# Mailman 3 answers these suffixes for every list: a mailbox or alias must not shadow them.
LIST_SUFFIXES = (
    "-bounces",
    "-confirm",
    "-join",
    "-leave",
    "-owner",
    "-request",
    "-subscribe",
    "-unsubscribe",
)
RESERVED_DB_NAMES = frozenset(
    [
        "mysql",
        "information_schema",
        "performance_schema",
        "sys",
        "postgres",
        "template0",
        "template1",
        "test",
        "phpmyadmin",
    ]
)
RESERVED_DB_USERS = frozenset(
    [
        "root",
        "mysql",
        "mariadb.sys",
        "postgres",
        "debian-sys-maint",
        "replication",
        "admin",
        "pg_monitor",
    ]
)

# -- unix names, slugs -----------------------------------------------------------------

SLUG_RE = re.compile(r"[a-z][a-z0-9-]{1,30}")


def check_slug(value: str) -> str:
    """Account slug: also the base of the account's unix user on every host."""
    if not SLUG_RE.fullmatch(value):
        raise ValueError(
            "must be 2-31 characters: a lowercase letter, then lowercase letters, digits or '-'"
        )
    if value.endswith("-") or "--" in value:
        raise ValueError("must not end with '-' or contain '--'")
    if value in RESERVED_UNIX_NAMES or value.startswith(("systemd", "pg_", "kb-")):
        raise ValueError(f"'{value}' is reserved for the system; choose another")
    return value


Slug = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_slug)]

UNIX_NAME_RE = re.compile(r"[a-z_][a-z0-9_-]{0,31}")


def check_unix_name(value: str) -> str:
    if not UNIX_NAME_RE.fullmatch(value):
        raise ValueError("must be 1-32 characters: lowercase letters, digits, '_' or '-'")
    if value in RESERVED_UNIX_NAMES:
        raise ValueError(f"'{value}' is reserved for the system; choose another")
    return value


UnixName = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_unix_name)]

# -- domains ---------------------------------------------------------------------------

# Cyrillic and Greek letters that render like Latin ones: a label made only of these is a
# look-alike of a Latin name ("аррӏе" for "apple").
_LATIN_LOOKALIKES = frozenset("аеорсуххіјѕԁӏԛԝѵаеіоԍһѡꮯαοϲνρτυкмнвтіїѕ")


def _script(ch: str) -> str:
    name = unicodedata.name(ch, "")
    return name.split(" ", 1)[0] if name else "UNKNOWN"


def _check_unicode_label(label: str) -> None:
    letters = [ch for ch in label if ch.isalpha()]
    scripts = {_script(ch) for ch in letters}
    if len(scripts) > 1:
        raise ValueError(
            f"label '{label}' mixes scripts ({', '.join(sorted(scripts))}); "
            "such names imitate other names and are refused"
        )
    if letters and scripts != {"LATIN"} and all(ch in _LATIN_LOOKALIKES for ch in letters):
        raise ValueError(f"label '{label}' imitates a Latin name and is refused")


def normalize_domain(value: str) -> str:
    """Lowercase, drop the trailing dot, map Unicode to IDNA ``xn--``, check the result."""
    check_text(value)
    name = value.strip()
    if name.endswith("."):
        name = name[:-1]
    if not name:
        raise ValueError("is empty")
    if any(ch.isspace() for ch in name):
        raise ValueError("must not contain spaces")
    if not name.isascii():
        for label in name.split("."):
            _check_unicode_label(label)
        try:
            name = idna.encode(name, uts46=True, transitional=False).decode("ascii")
        except idna.IDNAError as exc:
            raise ValueError(f"is not a valid internationalised domain name ({exc})") from None
    name = name.lower()
    if len(name) > 253:
        raise ValueError("is longer than 253 characters")
    labels = name.split(".")
    if len(labels) < 2:
        raise ValueError("must have at least two labels, like example.org")
    for label in labels:
        if not _LABEL_RE.fullmatch(label):
            raise ValueError(
                f"label '{label}' must be 1-63 letters, digits or '-', "
                "not starting or ending with '-'"
            )
        if label.startswith("xn--"):
            try:
                decoded = idna.decode(label)
            except idna.IDNAError:
                raise ValueError(f"label '{label}' is not valid punycode") from None
            _check_unicode_label(decoded)
    if labels[-1].isdigit():
        raise ValueError("must end with a real top-level domain, not a number")
    try:
        ipaddress.ip_address(name)
    except ValueError:
        return name
    raise ValueError("must be a domain name, not an IP address")  # pragma: no cover


DomainName = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(normalize_domain)]


def normalize_site_alias(value: str) -> str:
    """A site's alias: a domain name, or a wildcard ``*.<domain>`` (every name under it;
    its certificate needs ACME's DNS-01, so the domain's DNS served by Konbit)."""
    check_text(value)
    name = value.strip()
    if name.startswith("*."):
        return "*." + normalize_domain(name[2:])
    if "*" in name:
        raise ValueError("a wildcard is only '*.' before a domain, like *.example.org")
    return normalize_domain(name)


AliasName = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(normalize_site_alias)]

# -- mail ------------------------------------------------------------------------------

LOCAL_PART_RE = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?")
# Forward destinations may be outside the provider, so '+' and '=' are allowed there.
FOREIGN_LOCAL_PART_RE = re.compile(r"[a-z0-9](?:[a-z0-9._+=-]{0,62}[a-z0-9])?")


def _split_address(value: str) -> tuple[str, str]:
    check_text(value)
    value = value.strip()
    if value.count("@") != 1:
        raise ValueError("must be one address of the form name@domain")
    local, domain = value.split("@")
    return local.lower(), normalize_domain(domain)


def check_local_part(local: str, *, foreign: bool = False) -> str:
    pattern = FOREIGN_LOCAL_PART_RE if foreign else LOCAL_PART_RE
    if not pattern.fullmatch(local) or ".." in local:
        allowed = "letters, digits, '.', '_', '-'" + (", '+', '='" if foreign else "")
        raise ValueError(
            f"local part '{local}' must be 1-64 characters of {allowed}, "
            "starting and ending with a letter or digit"
        )
    if not foreign:
        if local in RESERVED_LOCAL_PARTS:
            raise ValueError(f"'{local}' is reserved for the system; choose another name")
        if local.endswith(LIST_SUFFIXES):
            raise ValueError(f"'{local}' ends with a suffix reserved for mailing lists")
    return local


def normalize_address(value: str) -> str:
    """A mailbox or list address on a domain the provider hosts."""
    local, domain = _split_address(value)
    return f"{check_local_part(local)}@{domain}"


def normalize_alias_address(value: str) -> str:
    """Like a mailbox address, or ``@domain`` for a domain's catch-all."""
    check_text(value)
    if value.strip().startswith("@"):
        return "@" + normalize_domain(value.strip()[1:])
    return normalize_address(value)


def normalize_destination(value: str) -> str:
    """Where an alias forwards to: any well-formed address, possibly elsewhere."""
    local, domain = _split_address(value)
    return f"{check_local_part(local, foreign=True)}@{domain}"


def normalize_contact_email(value: str) -> str:
    return normalize_destination(value)


MailAddress = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(normalize_address)]
AliasAddress = Annotated[
    str, BeforeValidator(_must_be_str), AfterValidator(normalize_alias_address)
]
Destination = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(normalize_destination)]
ContactEmail = Annotated[
    str, BeforeValidator(_must_be_str), AfterValidator(normalize_contact_email)
]

# -- databases ---------------------------------------------------------------------------

DB_SUFFIX_RE = re.compile(r"[a-z0-9]{1,32}")


def db_prefix(slug: str) -> str:
    """The account's namespace for database and database-user names."""
    return slug.replace("-", "_") + "_"


def check_db_identifier(value: str, slug: str, kind: str) -> str:
    """``<slug>_<suffix>``: the suffix has no '_' so no account can enter another's prefix."""
    prefix = db_prefix(slug)
    if not value.startswith(prefix):
        raise ValueError(f"{kind} names of this account must start with '{prefix}'")
    suffix = value[len(prefix) :]
    if not DB_SUFFIX_RE.fullmatch(suffix):
        raise ValueError(
            f"after '{prefix}' comes 1-32 lowercase letters or digits (no '_', '%' or '-')"
        )
    if len(value) > 63:
        raise ValueError("is longer than 63 characters")
    reserved = RESERVED_DB_NAMES if kind == "database" else RESERVED_DB_USERS
    if value in reserved:
        raise ValueError(f"'{value}' is reserved; choose another")
    return value


DB_NAME_SHAPE_RE = re.compile(r"[a-z][a-z0-9_]{0,62}")


def check_db_name_shape(value: str) -> str:
    """Shape alone (the account prefix is checked by the service, which knows the slug)."""
    if not DB_NAME_SHAPE_RE.fullmatch(value):
        raise ValueError(
            "must be 1-63 characters: a lowercase letter, then lowercase letters, digits or '_'"
        )
    if value in RESERVED_DB_NAMES or value in RESERVED_DB_USERS:
        raise ValueError(f"'{value}' is reserved; choose another")
    return value


DbName = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_db_name_shape)]

# -- paths, versions, secrets ------------------------------------------------------------

# Each segment starts with a letter, digit or '_': never '.', never '-' (an option to a tool).
REL_PATH_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._-]*(?:/[A-Za-z0-9_][A-Za-z0-9._-]*)*")


def check_rel_path(value: str) -> str:
    """A path inside the account's home: no absolute paths, no '..', no odd characters."""
    check_text(value)
    if len(value) > 200:
        raise ValueError("is longer than 200 characters")
    if not REL_PATH_RE.fullmatch(value):
        raise ValueError(
            "must be a relative path of letters, digits, '.', '_', '-' separated by '/', "
            "each part starting with a letter, digit or '_'"
        )
    return value


RelPath = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_rel_path)]


def check_password(value: str) -> str:
    """Any printable text of sane length; it is only ever hashed, never interpolated."""
    check_text(value)
    if len(value) < 8:
        raise ValueError("must be at least 8 characters")
    if len(value) > 1024:
        raise ValueError("must be at most 1024 characters")
    return value


Password = Annotated[str, AfterValidator(check_password)]

# -- hosts -----------------------------------------------------------------------------

HOST_NAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


def check_host_name(value: str) -> str:
    if not HOST_NAME_RE.fullmatch(value):
        raise ValueError("must be 1-63 lowercase letters, digits or '-'")
    return value


HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def check_host_key(value: str) -> str:
    """An OpenSSH public key line (``type base64 [comment]``); stored without the comment."""
    check_text(value)
    parts = value.strip().split()
    if len(parts) < 2 or parts[0] not in HOST_KEY_TYPES:
        raise ValueError(
            "must be the host's public key as in /etc/ssh/ssh_host_ed25519_key.pub "
            f"(types: {', '.join(HOST_KEY_TYPES)})"
        )
    try:
        blob = base64.b64decode(parts[1], validate=True)
    except ValueError:
        raise ValueError("key data is not valid base64") from None
    tlen = int.from_bytes(blob[:4], "big") if len(blob) >= 4 else 0
    if blob[4 : 4 + tlen].decode("ascii", "replace") != parts[0]:
        raise ValueError("key data does not match its declared type")
    return f"{parts[0]} {parts[1]}"


def host_key_fingerprint(key_line: str) -> str:
    """OpenSSH's ``SHA256:...`` fingerprint, the one ``ssh-keygen -lf`` prints."""
    import hashlib

    blob = base64.b64decode(key_line.split()[1])
    digest = base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


HostName = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_host_name)]
HostKey = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_host_key)]
