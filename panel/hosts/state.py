"""The desired state of one host, read from the panel database in a handful of queries.

The panel's own domains (sites, mailboxes, lists, databases) have their tables and typed
views; objects of kinds a plugin declares with a spec come from ``plugin_objects``, their
spec checked against the plugin's model on the way out as on the way in.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, false, or_, select, union
from sqlalchemy.orm import Session, selectinload

from panel.accounts.models import Account
from panel.core.db import ObjectStatus
from panel.core.secrets import unseal
from panel.core.settings import Settings, load_settings
from panel.databases.models import Database as DbModel
from panel.databases.models import DatabaseUser
from panel.dns.dkim import signing_keys
from panel.domains.models import Domain as DomainRow
from panel.hosts.models import Host
from panel.lists.models import ListMember, MailingList
from panel.mail.models import MailAlias, Mailbox
from panel.objects.models import PluginObject
from panel.sites.models import Site, SiteCertificate
from provisioners.api import (
    AccountView,
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
from provisioners.registry import Catalog, installed
from provisioners.transport import Target

Domain = Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser
Model = type[Domain | PluginObject | DomainRow]

# The panel's own domains, under the kind names their plugins declare.
DOMAIN_MODELS: dict[str, type[Domain]] = {
    "site": Site,
    "mailbox": Mailbox,
    "mail_alias": MailAlias,
    "list": MailingList,
    "database": DbModel,
    "database_user": DatabaseUser,
}


def kind_models(catalog: Catalog) -> dict[str, Model]:
    """Every kind a host may carry -> the table its rows live in."""
    out: dict[str, Model] = dict(DOMAIN_MODELS)
    out.update({k.name: PluginObject for k in catalog.stored()})
    if "zone" in catalog.kinds:  # a DNS zone is its domain, served by every DNS host
        out["zone"] = DomainRow
    return out


# Built from the installed plugins at start-up.
MODELS = kind_models(installed())


@dataclass(frozen=True)
class Snapshot:
    """The desired state of a host at one moment, and what it was built from."""

    host_id: int
    generation: int
    target: Target
    state: DesiredState
    versions: dict[ObjectRef, int]  # (kind, id) -> version rendered


def _stored_here(session: Session, host: Host) -> ColumnElement[bool]:
    """Plugin objects this host carries: its own, and every object of a kind served by
    every host of one of its roles."""
    by: dict[str, list[str]] = {"host": [], "role": [], "site": []}
    for kind in installed().stored():
        if kind.role in host.roles:
            by[kind.placement].append(kind.name)
    clauses = []
    if by["host"]:
        clauses.append(and_(PluginObject.kind.in_(by["host"]), PluginObject.host_id == host.id))
    if by["role"]:
        clauses.append(PluginObject.kind.in_(by["role"]))
    if by["site"]:
        clauses.append(
            and_(
                PluginObject.kind.in_(by["site"]),
                PluginObject.site_id.in_(select(Site.id).where(Site.host_id == host.id)),
            )
        )
    return or_(*clauses) if clauses else false()


def _items(
    objects: Sequence[PluginObject], accounts: dict[int, AccountView]
) -> dict[str, tuple[Item[Any], ...]]:
    kinds = installed().kinds
    out: dict[str, list[Item[Any]]] = {}
    for o in objects:
        spec = kinds[o.kind].spec
        assert spec is not None
        out.setdefault(o.kind, []).append(
            Item(
                id=o.id,
                version=o.version,
                kind=o.kind,
                account=accounts[o.account_id],
                name=o.name,
                spec=spec.model_validate(o.spec),
                deleting=o.status == ObjectStatus.deleting,
                site_id=o.site_id,
            )
        )
    return {k: tuple(v) for k, v in out.items()}


def snapshot(session: Session, host: Host, settings: Settings | None = None) -> Snapshot:
    """Read everything the host must carry in a handful of queries (never one per object).
    ``settings`` opens members' uploaded TLS keys for the host (without it they stay out)."""
    on_host = {kind: model.host_id == host.id for kind, model in DOMAIN_MODELS.items()}
    stored = _stored_here(session, host)
    owners = union(
        *(select(model.account_id).where(on_host[kind]) for kind, model in DOMAIN_MODELS.items()),
        select(PluginObject.account_id).where(stored),
    ).subquery()
    default_disk = (settings or load_settings()).default_quotas.get("disk_mb")
    accounts = {
        a.id: AccountView(a.id, a.slug, a.status, a.quotas.get("disk_mb", default_disk))
        for a in session.scalars(select(Account).where(Account.id.in_(select(owners))))
    }
    deleting = ObjectStatus.deleting
    sites = session.scalars(
        select(Site).where(on_host["site"]).options(selectinload(Site.aliases))
    ).all()
    tls = _tls_views(session, host.id, settings)
    mailboxes = session.scalars(select(Mailbox).where(on_host["mailbox"])).all()
    aliases = session.scalars(select(MailAlias).where(on_host["mail_alias"])).all()
    lists = session.scalars(select(MailingList).where(on_host["list"])).all()
    rosters = _rosters(session, host.id)
    databases = session.scalars(select(DbModel).where(on_host["database"])).all()
    db_users = session.scalars(
        select(DatabaseUser)
        .where(on_host["database_user"])
        .options(selectinload(DatabaseUser.databases))
    ).all()
    rows: list[tuple[str, Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser]] = [
        *(("site", o) for o in sites),
        *(("mailbox", o) for o in mailboxes),
        *(("mail_alias", o) for o in aliases),
        *(("list", o) for o in lists),
        *(("database", o) for o in databases),
        *(("database_user", o) for o in db_users),
    ]
    objects = session.scalars(select(PluginObject).where(stored).order_by(PluginObject.id)).all()

    def common(obj: Site | Mailbox | MailAlias | MailingList | DbModel | DatabaseUser) -> Any:
        """The fields every view shares."""
        return {
            "id": obj.id,
            "version": obj.version,
            "account": accounts[obj.account_id],
            "deleting": obj.status == deleting,
        }

    dns = _dns(session, host)
    failed_zones = dns.pop("failed_zones", [])
    state = DesiredState(
        host=HostView(host.id, host.name, tuple(host.roles), dict(host.settings)),
        accounts=tuple(sorted({accounts[s.account_id] for s in sites}, key=lambda a: a.slug)),
        sites=tuple(
            SiteView(
                **common(s),
                domain=s.domain,
                aliases=tuple(a.name for a in s.aliases),
                document_root=s.document_root,
                php=s.php,
                https=s.https,
                enabled=s.enabled,
                https_redirect=s.https_redirect,
                tls=tls.get(s.id) if s.https != "off" else None,
            )
            for s in sites
        ),
        mailboxes=tuple(
            MailboxView(
                **common(m),
                address=m.address,
                password_hash=m.password_hash,
                quota_mb=m.quota_mb,
                enabled=m.enabled,
            )
            for m in mailboxes
        ),
        mail_aliases=tuple(
            MailAliasView(
                **common(a),
                address=a.address,
                destinations=tuple(a.destinations),
            )
            for a in aliases
        ),
        lists=tuple(
            MailingListView(
                **common(ml),
                address=ml.address,
                owners=tuple(ml.owners),
                policy=ml.policy,
                settings=dict(ml.settings),
                members=rosters.get(ml.id, ()),
            )
            for ml in lists
        ),
        databases=tuple(
            DatabaseView(
                **common(d),
                engine=d.engine,
                name=d.name,
            )
            for d in databases
        ),
        database_users=tuple(
            DatabaseUserView(
                **common(u),
                engine=u.engine,
                name=u.name,
                password_hash=u.password_hash,
                databases=tuple(d.name for d in u.databases if d.status != deleting),
            )
            for u in db_users
        ),
        **dns,
        dkim_keys=signing_keys(session, host.id) if "mail" in host.roles else (),
        objects=_items(objects, accounts),
        failed=frozenset(
            [(kind, o.id) for kind, o in rows if o.status == ObjectStatus.failed]
            + [(o.kind, o.id) for o in objects if o.status == ObjectStatus.failed]
            + failed_zones
        ),
    )
    return Snapshot(
        host_id=host.id,
        generation=host.desired_generation,
        target=Target(host.name, host.address, host.ssh_port, host.ssh_user, host.host_key),
        state=state,
        versions={
            **{(kind, o.id): o.version for kind, o in rows},
            **{(o.kind, o.id): o.version for o in objects},
            **{("zone", z.id): z.version for z in state.zones},
        },
    )


def _dns(session: Session, host: Host) -> dict[str, Any]:
    """A DNS host's zones (every zone served here) and its fellow servers."""
    if "dns" not in host.roles:
        return {}
    from panel.dns import zones

    failed = session.scalars(select(DomainRow.id).where(DomainRow.status == ObjectStatus.failed))
    return {
        "zones": zones.zones_for(session),
        "dns_servers": zones.servers(session),
        "failed_zones": [("zone", i) for i in failed],
    }


def _tls_views(session: Session, host_id: int, settings: Settings | None) -> dict[int, TlsView]:
    """The certificate each site of the host serves, in one query."""
    out: dict[int, TlsView] = {}
    rows = session.scalars(
        select(SiteCertificate)
        .join(Site, Site.id == SiteCertificate.site_id)
        .where(
            Site.host_id == host_id,
            SiteCertificate.chain_pem.is_not(None),
            SiteCertificate.key_name.is_not(None),
        )
    ).all()
    for row in rows:
        key = None
        if row.key_sealed is not None:
            if settings is None:
                continue
            key = unseal(settings, row.key_sealed)
        out[row.site_id] = TlsView(str(row.chain_pem), str(row.key_name), key)
    return out


def _rosters(session: Session, host_id: int) -> dict[int, tuple[ListMemberView, ...]]:
    """Every roster of the host's lists in one query (never one per list)."""
    rows = session.execute(
        select(ListMember.list_id, ListMember.email, ListMember.role)
        .join(MailingList, MailingList.id == ListMember.list_id)
        .where(MailingList.host_id == host_id)
        .order_by(ListMember.list_id, ListMember.id)
    ).all()
    out: dict[int, list[ListMemberView]] = {}
    for list_id, email, role in rows:
        out.setdefault(list_id, []).append(ListMemberView(email, role))
    return {k: tuple(v) for k, v in out.items()}
