"""The public surface for provisioner plugins: plain data in, files and commands out.

A plugin declares what it serves (``Provisioner``: roles, settings model, object kinds,
metrics, typed facts), receives a host's ``DesiredState`` and ``Facts``, and answers with
``ManagedFile``s, ``Step``s, checker and reload commands; the engine does the rest over a
``Runner``.  Third-party plugins import only from here; the panel reaches plugins only
through here and ``provisioners.registry``.
"""

from provisioners.api.facts import Fact, Facts, lines
from provisioners.api.operations import (
    Applications,
    BackupStore,
    Command,
    CronJobs,
    DatabaseEngine,
    NotOffered,
    SiteFiles,
    SiteKeys,
    offered,
)
from provisioners.api.plugin import (
    NAME,
    Failure,
    ManagedFile,
    Metric,
    ObjectKind,
    Provisioner,
    Sample,
    Step,
)
from provisioners.api.runner import (
    HostKeyMismatch,
    HttpResponse,
    Result,
    Runner,
    TransportError,
    TunnelRefused,
)
from provisioners.api.state import (
    KONBIT_ROOT,
    LIVE,
    PLATFORMS_ROOT,
    AccountView,
    Addressed,
    DatabaseUserView,
    DatabaseView,
    DesiredState,
    HostView,
    Item,
    ListMemberView,
    MailAliasView,
    MailboxView,
    MailingListView,
    ObjectRef,
    SiteView,
    TlsView,
)

__all__ = [
    "KONBIT_ROOT",
    "LIVE",
    "NAME",
    "PLATFORMS_ROOT",
    "AccountView",
    "Addressed",
    "Applications",
    "BackupStore",
    "Command",
    "CronJobs",
    "DatabaseEngine",
    "DatabaseUserView",
    "DatabaseView",
    "DesiredState",
    "Fact",
    "Facts",
    "Failure",
    "HostKeyMismatch",
    "HostView",
    "HttpResponse",
    "Item",
    "ListMemberView",
    "MailAliasView",
    "MailboxView",
    "MailingListView",
    "ManagedFile",
    "Metric",
    "NotOffered",
    "ObjectKind",
    "ObjectRef",
    "Provisioner",
    "Result",
    "Runner",
    "Sample",
    "SiteFiles",
    "SiteKeys",
    "SiteView",
    "Step",
    "TlsView",
    "TransportError",
    "TunnelRefused",
    "lines",
    "offered",
]
