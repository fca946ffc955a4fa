"""The plugin base: what a provisioner declares (roles, settings, object kinds, metrics,
facts) and what it answers (files, steps, checkers, reloads, usage)."""

from __future__ import annotations

import abc
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import BaseModel

from provisioners.api.facts import Fact, Facts
from provisioners.api.state import DesiredState, HostView, ObjectRef

if TYPE_CHECKING:
    from provisioners.api.runner import Runner

# Kinds, roles, metrics and settings keys are identifiers: they appear in URLs, in
# table rows and in JSON keys.
NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


@dataclass(frozen=True)
class ObjectKind:
    """A kind of object a plugin serves, and how the panel reads its desired state.

    * ``spec`` is None for the panel's own domains (sites, mailboxes, lists, databases):
      the panel stores them in their own tables and hands them over as typed views
      (``DesiredState.sites``...).
    * With a ``spec`` (a pydantic model), the panel stores the object for the plugin: it
      validates the spec at the API boundary (``/api/v1/objects/<kind>``: a 422 names the
      field), keeps status and version, fences tenancy, and hands the objects over as
      ``DesiredState.items(kind, Spec)``.

    ``placement``: ``"host"`` places each object on one host of ``role`` (a site on its web
    host); ``"role"`` serves every object of the kind on every host of the role (a DNS
    zone on each DNS server), so a change reaches all of them; ``"site"`` attaches each
    object to one of its account's sites (an SFTP login, a cron job): it lives on the
    site's web host, follows the site when it moves and goes when the site goes.
    ``one_per_site``: at most one object of the kind per site (a site's PHP settings).
    ``staff_fields``: spec fields a member may not set or change (a login's shell)."""

    name: str
    role: str
    spec: type[BaseModel] | None = None
    placement: Literal["host", "role", "site"] = "host"
    title: str = ""  # what a person calls it ("mailbox"), for messages
    one_per_site: bool = False
    staff_fields: tuple[str, ...] = ()  # spec fields only the provider's staff may change


@dataclass(frozen=True)
class Metric:
    """A usage figure a plugin measures.  A level (disk, mail) is what an object holds at
    a collection; a counter (HTTP requests) is what happened since the previous one.
    ``storage_of``: the object kind whose level counts against the account's disk quota."""

    name: str
    service: str
    counter: bool = False
    storage_of: str | None = None


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
    """One usage figure of one object, from one collection (see ``Metric``)."""

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
    """Base of every plugin; registered under the entry-point group ``konbit.provisioners``.

    Declarations (class attributes, checked loudly at start-up by ``provisioners.registry``):
    ``name``; ``roles`` it serves; ``settings``, a pydantic model of its per-host settings
    (its fields join the host's settings; every field needs a default); ``kinds`` of
    objects; ``metrics``; ``facts`` it reads."""

    name: ClassVar[str]
    roles: ClassVar[tuple[str, ...]]
    settings: ClassVar[type[BaseModel] | None] = None
    kinds: ClassVar[tuple[ObjectKind, ...]] = ()
    metrics: ClassVar[tuple[Metric, ...]] = ()
    facts: ClassVar[tuple[Fact[Any], ...]] = ()
    # Reloads run by rank, lowest first (then plugin order): a backend (PHP-FPM, 10)
    # before the front ends that connect to it (50).
    reload_rank: ClassVar[int] = 50
    # Its own words in the panel's other languages: {"fr": {"SFTP login": "accès SFTP"}}
    # for its kinds' titles and its spec fields' titles, descriptions and choices.
    messages: ClassVar[Mapping[str, Mapping[str, str]]] = {}

    def applies_to(self, host: HostView) -> bool:
        return any(role in host.roles for role in self.roles)

    def bootstrap(self, host: HostView) -> Sequence[tuple[str, bytes]]:
        """Files outside the konbit tree that point into it (an include line), written once
        by the engine if missing: ``(absolute path, content)``."""
        return ()

    @abc.abstractmethod
    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        """Every file of this plugin for this host, from the desired state alone."""

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

    def operations(self) -> object | None:
        """The typed operations this plugin offers the panel's tasks: one object that
        implements protocols of ``provisioners.api.operations`` (``SiteFiles``,
        ``DatabaseEngine``...), found with ``offered``; None offers nothing."""
        return None

    def converge(self, conn: Runner, state: DesiredState, facts: Facts) -> list[str]:
        """For services driven through an API rather than files (Mailman's REST API):
        make the host match the state over ``conn`` and return what was done (empty when
        nothing was needed).  Runs after the files are live; raise ``Failure``."""
        return []
