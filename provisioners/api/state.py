"""The desired state of one host, as plain frozen data.

A plugin never sees the panel's ORM or database: the panel reads the state once per
reconcile and hands it over.  Every value in it already matched a strict pattern at the
API boundary; plugins still build commands as argv (never by string concatenation).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from pydantic import BaseModel

S = TypeVar("S", bound=BaseModel)

# The tree every plugin's files live in, on every host: generations + one symlink.
KONBIT_ROOT = "/etc/konbit"
# Application codebases shared read-only by sites (provisioners.apps); PHP pools may read them.
PLATFORMS_ROOT = "/srv/konbit/platforms"
LIVE = f"{KONBIT_ROOT}/live"

# An object of the panel as the engine reports on it: ("site", 12), ("mailbox", 7), ...
ObjectRef = tuple[str, int]


@dataclass(frozen=True)
class HostView:
    id: int
    name: str
    roles: tuple[str, ...]
    settings: Mapping[str, Any]

    def settings_as(self, model: type[S]) -> S:
        """This host's settings as a plugin's model (other plugins' keys left out,
        defaults filled in): a plugin reads typed values, never the raw mapping."""
        fields = model.model_fields
        return model.model_validate({k: v for k, v in self.settings.items() if k in fields})


@dataclass(frozen=True)
class AccountView:
    id: int
    slug: str
    status: str
    disk_mb: int | None = None  # the account's disk quota (None: unlimited)

    @property
    def unix_user(self) -> str:
        """The account's unix user on every host (the slug, validated and not reserved)."""
        return self.slug


@dataclass(frozen=True)
class TlsView:
    """The certificate a site serves: its chain (public, leaf first) and the name of its
    private key on the host (``/etc/konbit/private/site-<id>/<key_name>``).  ``key_pem`` is
    set only for a member's uploaded key, which the host may not have yet: it reaches the
    host on a step's stdin, never in the tree (whose diff is recorded)."""

    chain_pem: str
    key_name: str
    key_pem: bytes | None = field(default=None, repr=False)


@dataclass(frozen=True)
class SiteView:
    id: int
    version: int
    account: AccountView
    domain: str
    aliases: tuple[str, ...]
    document_root: str
    php: str | None
    https: str
    enabled: bool
    deleting: bool
    https_redirect: bool = True
    tls: TlsView | None = None  # served over HTTPS when set (mode acme or custom)


class Addressed:
    """What mailboxes, aliases and lists share: an address, ``local@domain``."""

    address: str

    @property
    def local_part(self) -> str:
        return self.address.rpartition("@")[0]

    @property
    def domain(self) -> str:
        return self.address.rpartition("@")[2]


@dataclass(frozen=True)
class MailboxView(Addressed):
    id: int
    version: int
    account: AccountView
    address: str  # local@domain, lower case
    password_hash: str  # "{SCHEME}..." as dovecot verifies it
    quota_mb: int
    enabled: bool
    deleting: bool


@dataclass(frozen=True)
class MailAliasView(Addressed):
    id: int
    version: int
    account: AccountView
    address: str  # local@domain, or "@domain" for the domain's catch-all
    destinations: tuple[str, ...]
    deleting: bool


@dataclass(frozen=True)
class ListMemberView:
    email: str
    role: str  # "member", "owner" or "moderator"


@dataclass(frozen=True)
class MailingListView(Addressed):
    id: int
    version: int
    account: AccountView
    address: str
    owners: tuple[str, ...]
    policy: str  # "open", "confirm" or "moderate"
    settings: Mapping[str, Any]
    members: tuple[ListMemberView, ...]
    deleting: bool


@dataclass(frozen=True)
class DatabaseView:
    id: int
    version: int
    account: AccountView
    engine: str  # "mariadb" or "postgresql"
    name: str
    deleting: bool


@dataclass(frozen=True)
class DatabaseUserView:
    id: int
    version: int
    account: AccountView
    engine: str
    name: str
    password_hash: str  # mysql_native_password hash or SCRAM-SHA-256 verifier
    databases: tuple[str, ...]  # names of the databases it holds every privilege on
    deleting: bool


@dataclass(frozen=True)
class RecordView:
    """One resource record of a zone.  ``name`` is relative to the zone ("@" its apex,
    "www", "_dmarc", "k1._domainkey"); ``data`` is the record's data in zone-file
    presentation form (a TXT's strings already quoted), built by the panel from values
    that matched a strict pattern of their type."""

    name: str
    type: str  # A, AAAA, CNAME, MX, TXT, SRV, CAA, NS
    ttl: int
    data: str


@dataclass(frozen=True)
class ZoneView:
    """A DNS zone the provider serves: an account's domain with every record Konbit
    derives (its sites on their web hosts, its mail on the mail host, SPF, DMARC, DKIM)
    and those its members added.  Serials are the DNS server's business: they change when
    the content does."""

    id: int  # the domain's
    version: int
    account: AccountView
    name: str  # lower case, no trailing dot
    records: tuple[RecordView, ...]
    dnssec: bool
    deleting: bool


@dataclass(frozen=True)
class DnsServerView:
    """One of the provider's DNS servers, as the others must know it: the primary holds
    the zones, the secondaries transfer them from it (NOTIFY, then AXFR/IXFR)."""

    id: int
    name: str  # the host's name in the panel
    address: str  # where the others reach it (an IP address)
    ns_name: str  # its name in the zones' NS records, a FQDN without the trailing dot
    primary: bool


@dataclass(frozen=True)
class DkimKeyView:
    """A DKIM key a mail host signs its domain's mail with: ``domain`` is the zone (the
    signature's ``d=``, which also covers the zone's subdomains' mail), ``selector`` names
    the key (its public part is the zone's ``<selector>._domainkey`` TXT record, already
    published when the key reaches a host's state).  The private key was made on this
    host by the panel's key task and never left it."""

    domain: str  # lower case, no trailing dot
    selector: str  # a DNS label: [a-z0-9-]


@dataclass(frozen=True)
class Item(Generic[S]):
    """An object of a plugin-declared kind (``ObjectKind`` with a ``spec``): the panel keeps
    its status and version; ``spec`` is the plugin's own model, validated on the way in."""

    id: int
    version: int
    kind: str
    account: AccountView
    name: str
    spec: S
    deleting: bool
    site_id: int | None = None  # the site it is attached to (a kind placed "site")


@dataclass(frozen=True)
class DesiredState:
    """Everything one host must carry, read from the panel database at one moment."""

    host: HostView
    accounts: tuple[AccountView, ...] = ()
    sites: tuple[SiteView, ...] = ()
    mailboxes: tuple[MailboxView, ...] = ()
    mail_aliases: tuple[MailAliasView, ...] = ()
    lists: tuple[MailingListView, ...] = ()
    databases: tuple[DatabaseView, ...] = ()
    database_users: tuple[DatabaseUserView, ...] = ()
    # DNS hosts: every zone the provider serves, and every DNS server (this one included).
    zones: tuple[ZoneView, ...] = ()
    dns_servers: tuple[DnsServerView, ...] = ()
    # Mail hosts: the DKIM key each of their mail domains' zones signs with (one a zone).
    dkim_keys: tuple[DkimKeyView, ...] = ()
    # Objects of plugin-declared kinds the panel stores for them: kind -> items.
    objects: Mapping[str, tuple[Item[Any], ...]] = field(default_factory=dict)
    # Objects whose last apply failed: the host keeps what it has for them until they
    # change again, so one bad object never blocks the others.
    failed: frozenset[ObjectRef] = frozenset()

    def live_sites(self) -> list[SiteView]:
        return [s for s in self.sites if not s.deleting]

    def items(self, kind: str, spec: type[S]) -> tuple[Item[S], ...]:
        """The objects of a plugin-declared kind on this host, their specs typed."""
        found = self.objects.get(kind, ())
        for item in found:
            if not isinstance(item.spec, spec):
                raise TypeError(f"{kind} objects carry {type(item.spec).__name__}, not {spec}")
        return found
