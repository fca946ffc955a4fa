"""The public surface for provisioner plugins: plain data in, files and commands out.

A plugin never sees the panel's ORM or database: the engine hands it a ``DesiredState``
(frozen dataclasses) and the host's ``Facts``, and takes back ``ManagedFile``s, ``Step``s,
validation and reload commands.  Every value in the state already matched a strict pattern
at the API boundary; plugins still build commands as argv (never by string concatenation).
"""

from __future__ import annotations

import abc
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, Literal

if TYPE_CHECKING:
    from provisioners.transport import Connection

# The tree every plugin's files live in, on every host: generations + one symlink.
KONBIT_ROOT = "/etc/konbit"
LIVE = f"{KONBIT_ROOT}/live"

# An object of the panel as the engine reports on it: ("site", 12), ("mailbox", 7), ...
ObjectRef = tuple[str, int]


@dataclass(frozen=True)
class HostView:
    id: int
    name: str
    roles: tuple[str, ...]
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class AccountView:
    id: int
    slug: str
    status: str

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
    # Objects whose last apply failed: the host keeps what it has for them until they
    # change again, so one bad object never blocks the others.
    failed: frozenset[ObjectRef] = frozenset()

    def live_sites(self) -> list[SiteView]:
        return [s for s in self.sites if not s.deleting]


@dataclass(frozen=True)
class ManagedFile:
    """A file under the konbit tree (``path`` relative to it, e.g. ``nginx/site-12.conf``)."""

    path: str
    content: bytes
    mode: int = 0o644
    # Owner is always root; a service reads a 0640 file by its group, which must exist
    # before the reconcile (a package's group): files are staged while steps run.
    group: str = "root"


@dataclass(frozen=True)
class Facts:
    """What the host carries now, read with one command per reconcile."""

    manifest: Mapping[str, str]  # relative path -> sha256 of the live tree
    users: Mapping[str, int]  # unix user -> uid
    sections: Mapping[str, str] = field(default_factory=dict)  # plugin name -> its fact output


@dataclass(frozen=True)
class Step:
    """One idempotent imperative action, as argv.  ``before`` steps run before validation
    (a pool needs its user), ``after`` steps once the new configuration is live."""

    description: str
    argv: tuple[str, ...]
    phase: Literal["before", "after"] = "before"
    object_ids: tuple[ObjectRef, ...] = ()  # the objects a failure is reported on
    # Secrets and scripts go to the command's stdin (never argv: argv shows in ``ps``).
    stdin: bytes | None = None


@dataclass(frozen=True)
class Sample:
    """One usage figure of one object, from one collection.

    A level (disk, mail, database size) is what the object holds now; a counter (HTTP
    requests and bytes) is what happened since the previous collection, so the panel sums
    counters and takes the peak and average of levels."""

    object: ObjectRef  # ("site", 12), ("account", 3) for an account's home, ("mailbox", 7)
    metric: str
    value: int
    counter: bool = False


class Failure(Exception):
    """Raised by a plugin's ``converge``: what failed, and on which objects if known."""

    def __init__(self, message: str, objects: Mapping[ObjectRef, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.objects = dict(objects or {})


class Provisioner(abc.ABC):
    """Base of every plugin; registered under the entry-point group ``konbit.provisioners``."""

    name: ClassVar[str]
    role: ClassVar[str]

    def applies_to(self, host: HostView) -> bool:
        return self.role in host.roles

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        """Files outside the konbit tree that point into it (an include line), written once
        by the engine if missing: ``(absolute path, content)``."""
        return ()

    @abc.abstractmethod
    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        """Every file of this plugin for this host, from the desired state alone."""

    def fact_script(self) -> str | None:
        """A read-only shell snippet whose output reaches ``Facts.sections[name]``."""
        return None

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Only the imperative work still needed (nothing when the host is already right);
        ``changed`` holds the tree paths this reconcile adds, changes or removes."""
        return ()

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        """Checker commands run with the staged tree in place of the live one."""
        return ()

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        """Commands that make the services read the new files: each at most once."""
        return ()

    def owns(self, path: str) -> bool:
        """Whether a path of the tree belongs to this plugin (stale files get removed)."""
        return path.startswith(f"{self.name}/")

    def derived(self, path: str) -> bool:
        """A file the plugin's checker builds in the staged tree (postmap's ``.db``): not
        rendered, so never removed as stale."""
        return False

    def object_of(self, path: str) -> ObjectRef | None:
        """The one object a tree path belongs to (None for files many objects share)."""
        return None

    def blame(self, message: str) -> set[ObjectRef]:
        """The objects a checker's error message names."""
        return set()

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        """A shell snippet that measures this plugin's objects, run inside the one usage
        exec per host (never one command per object).  ``cursor`` is what
        ``parse_usage`` returned last time (log offsets), kept by the panel with the
        samples, so a collection whose samples were not stored is read again."""
        return None

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        """The samples in the snippet's output, and the cursor for the next collection."""
        return [], dict(cursor)

    def converge(self, conn: Connection, state: DesiredState, facts: Facts) -> list[str]:
        """For services driven through an API rather than files (Mailman's REST API):
        make the host match the state over ``conn`` and return what was done (empty when
        nothing was needed).  Runs after the files are live; raise ``Failure``."""
        return []
