"""Every model, imported once so the metadata (and Alembic) sees the whole schema."""

# Not a model: the listener that marks the DNS servers dirty when what zones are made of
# changes, registered here because every process imports this module.
import panel.dns.events  # noqa: F401
from panel.accounts.models import Account, ApiToken, Membership, User
from panel.apps.models import Platform, SiteApp, SiteInventory
from panel.audit.models import AuditEvent
from panel.core.db import Base
from panel.core.idempotency import IdempotencyRecord
from panel.databases.models import Database, DatabaseUser
from panel.dns.dkim import DkimKey
from panel.dns.models import DnsChallenge, DnsRecord, DnsZone
from panel.domains.models import Domain
from panel.hosts.models import Apply, Host
from panel.lists.models import MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.objects.models import PluginObject
from panel.sites.models import AcmeAccount, Site, SiteAlias, SiteCertificate
from panel.tasks.models import Backup, BackupSchedule, Task
from panel.usage.models import AccountUsage, HostUsage, UsageDaily, UsageRollup, UsageSample
from panel.web.models import LoginFailure, WebPrefs, WebSession

__all__ = [
    "Account",
    "AccountUsage",
    "AcmeAccount",
    "ApiToken",
    "Apply",
    "AuditEvent",
    "Backup",
    "BackupSchedule",
    "Base",
    "Database",
    "DatabaseUser",
    "DkimKey",
    "DnsChallenge",
    "DnsRecord",
    "DnsZone",
    "Domain",
    "Host",
    "HostUsage",
    "IdempotencyRecord",
    "LoginFailure",
    "MailAlias",
    "Mailbox",
    "MailingList",
    "Membership",
    "Platform",
    "PluginObject",
    "Site",
    "SiteAlias",
    "SiteApp",
    "SiteCertificate",
    "SiteInventory",
    "Task",
    "UsageDaily",
    "UsageRollup",
    "UsageSample",
    "User",
    "WebPrefs",
    "WebSession",
]
