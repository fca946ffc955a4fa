"""Operations that plugins offer the panel's imperative tasks (backup, restore, clone,
migrate, HTTPS orders), declared by what they do.

The panel's task code knows no host path, shell script nor SQL dialect: it asks the
installed plugins for an operation (``offered(plugins, DatabaseEngine, "mariadb")``) and
runs the ``Command`` it returns, on a connection of its choosing, or pipes one host's
command into another's (``panel.tasks.streams.pipe`` takes ``Command.argv``).  Arguments
are typed values; a plugin passes them to its fixed scripts as "$1".. or quotes them for
its SQL, never splicing them into code.

A plugin offers operations through a method ``operations()`` that returns one object
implementing one or more of these protocols.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

if TYPE_CHECKING:
    from provisioners.api.plugin import Provisioner

__all__ = [
    "Applications",
    "BackupStore",
    "Command",
    "CronJobs",
    "DatabaseEngine",
    "DkimKeys",
    "NotOffered",
    "SiteFiles",
    "SiteKeys",
    "offered",
]


@dataclass(frozen=True)
class Command:
    """One command for a host: argv, and the bytes its stdin gets.  ``stdin`` None: the
    caller feeds it (a stream piped from another host, a manifest), or it reads nothing."""

    argv: tuple[str, ...]
    stdin: bytes | None = None

    @classmethod
    def script(cls, script: str, *args: str, stdin: bytes | None = None) -> Command:
        """A fixed shell script; ``args`` reach it as "$1", "$2"... never as code."""
        return cls(("sh", "-c", script, "konbit", *args), stdin)


@runtime_checkable
class SiteFiles(Protocol):
    """A web host's document roots: their place, copies out and in, the archive."""

    def document_root(self, slug: str, document_root: str) -> str:
        """The absolute path of a site's document root (``document_root`` relative to the
        account's home)."""

    def archive_path(self, slug: str, name: str) -> str:
        """Where a copy of one of the account's trees, named ``name``, is archived."""

    def tar_out(self, root: str, *, gz: bool) -> Command:
        """The tree at ``root`` as a tar stream on stdout (numeric owners), gzip'd or not."""

    def put_files(
        self, root: str, user: str, tag: str, *, archive: str | None, gz: bool
    ) -> Command:
        """A tar stream on stdin becomes the tree at ``root``, owned by the unix ``user``:
        unpacked beside it (``tag`` names the staging copy), then swapped in; the tree it
        replaces is moved to ``archive``, or removed when ``archive`` is None."""

    def archive(self, root: str, dest: str) -> Command:
        """The tree at ``root`` (if any) moves to ``dest`` with the UTC time appended."""

    def remove_copy(self, root: str) -> Command:
        """The tree at ``root`` and its staging copies are removed."""

    def rewrite_names(self, root: str, user: str, renames: Sequence[tuple[str, str]]) -> Command:
        """Applications' config files under ``root`` naming an old name (a database, user
        or host) name the new one instead; run as ``user``; prints the files changed."""


@runtime_checkable
class SiteKeys(Protocol):
    """A site's private keys on its web host and the HTTP-01 answers of its ACME orders."""

    def key_dir(self, site_id: int) -> str:
        """The site's key directory on its web host."""

    def has_keys(self, site_id: int) -> Command:
        """Exits 0 when the site has a key directory on the host."""

    def keys_out(self, site_id: int) -> Command:
        """The site's key directory as a gzip'd tar stream on stdout."""

    def put_keys(self) -> Command:
        """A stream from ``keys_out`` on stdin, unpacked in place (modes kept)."""

    def remove_keys(self, site_id: int) -> Command:
        """The site's key directory is removed."""

    def new_key_and_csr(self, site_id: int, key_name: str, names: Sequence[str]) -> Command:
        """A new private key ``key_name`` in the site's key directory (it never leaves the
        host) and a PEM CSR for ``names`` (the first is the subject) on stdout."""

    def remove_key(self, site_id: int, key_name: str) -> Command:
        """One private key of the site is removed."""

    def write_challenge(self, token: str, validation: bytes) -> Command:
        """The HTTP-01 answer ``validation`` is served for ``token`` by every vhost."""

    def remove_challenges(self, tokens: Sequence[str]) -> Command:
        """The HTTP-01 answers of ``tokens`` are removed."""


@runtime_checkable
class BackupStore(Protocol):
    """Files on a backup host, at paths under the panel's ``backup_dir``."""

    def store(self, path: str) -> Command:
        """Stdin is written to ``path`` (0600, parents made), replacing it only once whole."""

    def read(self, path: str) -> Command:
        """The file at ``path`` on stdout."""

    def remove(self, path: str) -> Command:
        """The file or tree at ``path`` is removed."""

    def size(self, path: str) -> Command:
        """Prints the bytes under ``path`` (a decimal number)."""


@runtime_checkable
class DatabaseEngine(Protocol):
    """One database engine's copies, archives and locks on a db host."""

    engine: str

    def dump(self, name: str) -> Command:
        """A gzip'd SQL dump of the database on stdout; fails unless the dump is whole."""

    def dump_and_keep(self, name: str, keep: str) -> Command:
        """``dump``, the same bytes also kept on the host as ``keep`` + ``.partial`` until
        ``keep_dumps`` (a move keeps what it sent)."""

    def kept_path(self, slug: str, name: str, stamp: str) -> str:
        """Where ``dump_and_keep`` keeps a database's last dump in the account's archive."""

    def keep_dumps(self, paths: Sequence[str]) -> Command:
        """The dumps ``dump_and_keep`` sent become the archived files ``paths``."""

    def discard_dumps(self, paths: Sequence[str]) -> Command:
        """The partial dumps of ``dump_and_keep`` for ``paths`` are removed."""

    def load(self, name: str) -> Command:
        """A gzip'd dump on stdin replaces what it holds in the existing database ``name``
        (as its owner, so the account's users keep their rights)."""

    def archive_dir(self, slug: str) -> str:
        """The account's database archive on the host."""

    def archive(self, name: str, slug: str) -> Command:
        """A dump of the database into ``archive_dir(slug)``, named with the UTC time."""

    def freeze(self, users: Sequence[str], *, lock: bool) -> Command:
        """Lock the users out and end their sessions (``lock``), or let them in again."""

    def drop(self, databases: Sequence[str], users: Sequence[str]) -> Command:
        """Drop the databases (with whatever else the engine made for them) and users;
        those already gone are no error."""


@runtime_checkable
class CronJobs(Protocol):
    """What a plugin offers for cron jobs on a web host (``operations()``).

    Run records are plain values: ``id``, ``started_ms``, ``ended_ms``, ``exit_code``,
    ``how`` ("cron" or "now"), ``output_bytes``, ``notes`` (list of sentences) and
    ``output`` (the tail kept)."""

    def run_now(self, job_id: int) -> Command:
        """Run the job once as cron would; prints the run's record."""

    def runs(self, job_id: int, limit: int = 10) -> Command:
        """Prints the job's last runs, newest first."""

    def parse_runs(self, text: str) -> list[dict[str, Any]]:
        """The records ``run_now`` or ``runs`` printed."""


@runtime_checkable
class Applications(Protocol):
    """What a plugin offers for applications on web hosts: platforms (shared, read-only
    codebases) and the sites on them (``provisioners.apps``, used by ``panel.apps``)."""

    apps: tuple[str, ...]  # the applications it installs and updates

    def platforms(self) -> Command:
        """Prints the platforms the host holds (``parse_platforms``)."""

    def parse_platforms(self, text: str) -> dict[str, str]:
        """platform name -> its build's sha256."""

    def put_platform(self, name: str, sha256: str, artifact: bytes) -> Command:
        """Puts a platform build in place on the host, checked against its checksum."""

    def link(self, root: str, user: str, platform: str) -> Command:
        """Points a site's document root at a platform (an atomic switch)."""

    def run(self, app: str, action: str, root: str, user: str, values: Any) -> Command:
        """The application's own install, update or status for one site."""

    def parse_result(self, text: str) -> dict[str, Any] | None:
        """The outcome ``run`` printed."""

    def scan(self, roots: Mapping[int, tuple[str, str]], probes: Sequence[str]) -> Command:
        """Prints the files that tell each document root's application (site id: its
        unix user and document root)."""

    def parse_scan(self, text: str) -> dict[int, dict[str, str]]:
        """site id -> {relative path: the file's first lines}."""


@runtime_checkable
class DkimKeys(Protocol):
    """DKIM keys on a mail host: made there, and never leaving it (``provisioners.mail``)."""

    def new_key(self, domain: str, selector: str) -> Command:
        """A 2048-bit RSA key for ``domain`` named ``selector``, readable by the signer
        alone (an existing one is kept: a retried task gets the same key); prints its
        public part, base64 of the DER SubjectPublicKeyInfo (a DKIM record's ``p=``)."""

    def remove_key(self, domain: str, selector: str) -> Command:
        """The key is removed (one already gone is no error)."""


class NotOffered(LookupError):
    """No installed plugin offers the operation asked for."""


T = TypeVar("T")


def offered(plugins: Iterable[Provisioner], protocol: type[T], name: str | None = None) -> T:
    """The operations of type ``protocol`` of the first plugin (named ``name``, if given)
    that offers them."""
    for plugin in plugins:
        if name is not None and plugin.name != name:
            continue
        ops = plugin.operations()
        if isinstance(ops, protocol):
            return ops
    which = f" for '{name}'" if name is not None else ""
    raise NotOffered(
        f"no installed plugin offers {protocol.__name__}{which}; install one that does "
        "(entry-point group konbit.provisioners), or enable its operations()"
    )
