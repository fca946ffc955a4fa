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
from typing import Any, ClassVar, Literal

# The tree every plugin's files live in, on every host: generations + one symlink.
KONBIT_ROOT = "/etc/konbit"
LIVE = f"{KONBIT_ROOT}/live"


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


@dataclass(frozen=True)
class DesiredState:
    """Everything one host must carry, read from the panel database at one moment."""

    host: HostView
    accounts: tuple[AccountView, ...] = ()
    sites: tuple[SiteView, ...] = ()

    def live_sites(self) -> list[SiteView]:
        return [s for s in self.sites if not s.deleting]


@dataclass(frozen=True)
class ManagedFile:
    """A file under the konbit tree (``path`` relative to it, e.g. ``nginx/site-12.conf``)."""

    path: str
    content: bytes
    mode: int = 0o644


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
    object_ids: tuple[tuple[str, int], ...] = ()  # (kind, id) a failure is reported on


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
