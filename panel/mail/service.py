"""Mailboxes and aliases: one address space per domain, one mail host per domain."""

from __future__ import annotations

from typing import Any

from argon2 import PasswordHasher
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.accounts.models import Account
from panel.accounts.service import account_for_write, check_count_quota
from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, QuotaExceeded
from panel.core.objects import apply_changes, mark_pending
from panel.dns import dkim
from panel.domains.models import Domain
from panel.domains.service import require_owned
from panel.hosts import service as hosts
from panel.hosts.models import Host
from panel.mail.models import MailAlias, Mailbox
from panel.mail.schemas import MailAliasCreate, MailAliasUpdate, MailboxCreate, MailboxUpdate

# Dovecot verifies ARGON2ID through libsodium; the panel never keeps the password itself.
_mail_hasher = PasswordHasher(time_cost=3, memory_cost=65536, parallelism=1)


def hash_mail_password(password: str) -> str:
    return "{ARGON2ID}" + _mail_hasher.hash(password)


def address_in_use(session: Session, address: str) -> bool:
    """An address is one thing: a mailbox, an alias or a list, never two of them."""
    from panel.lists.models import MailingList

    return any(
        session.scalar(select(model.id).where(model.address == address).limit(1)) is not None
        for model in (Mailbox, MailAlias, MailingList)
    )


def domain_of(address: str) -> str:
    return address.rsplit("@", 1)[1]


def mail_host_for(session: Session, domain: Domain) -> Host:
    """All mail of a domain lives on one mail host: reuse it, or place the domain."""
    for model in (Mailbox, MailAlias):
        host_id = session.scalar(select(model.host_id).where(model.domain_id == domain.id).limit(1))
        if host_id is not None:
            return session.get_one(Host, host_id)
    return hosts.place(session, "mail", Mailbox)


def _check_mail_quota(
    session: Session, account: Account, extra_mb: int, exclude: int | None
) -> None:
    limit = account.quotas.get("mail_mb")
    if limit is None:
        return
    stmt = select(func.coalesce(func.sum(Mailbox.quota_mb), 0)).where(
        Mailbox.account_id == account.id, Mailbox.status != ObjectStatus.deleting
    )
    if exclude is not None:
        stmt = stmt.where(Mailbox.id != exclude)
    used = int(session.scalar(stmt) or 0)
    if used + extra_mb > limit:
        raise QuotaExceeded("mail_mb", used + extra_mb, int(limit))


def create_mailbox(session: Session, principal: Principal, data: MailboxCreate) -> Mailbox:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(session, account, "mailboxes", Mailbox)
    _check_mail_quota(session, account, data.quota_mb, None)
    domain = require_owned(session, account.id, domain_of(data.address), "address")
    if address_in_use(session, data.address):
        raise Conflict(f"The address {data.address} is already in use.")
    host = mail_host_for(session, domain)
    mailbox = Mailbox(
        account_id=account.id,
        domain_id=domain.id,
        host_id=host.id,
        address=data.address,
        password_hash=hash_mail_password(data.password),
        quota_mb=data.quota_mb,
        enabled=data.enabled,
    )
    session.add(mailbox)
    session.flush()
    hosts.bump_generations(session, [host.id])
    dkim.ensure_key(session, domain, host.id, principal.user.id)  # the domain's first mail
    return mailbox


def update_mailbox(session: Session, mailbox: Mailbox, data: MailboxUpdate) -> dict[str, Any]:
    values = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "quota_mb" in values:
        account = session.get_one(Account, mailbox.account_id)
        _check_mail_quota(session, account, values["quota_mb"], mailbox.id)
    password = values.pop("password", None)
    changes = apply_changes(mailbox, values)
    if password is not None:
        mailbox.password_hash = hash_mail_password(password)
        changes["password"] = audit.SECRET_CHANGED
    if changes:
        mark_pending(mailbox)
        hosts.bump_generations(session, [mailbox.host_id])
    return changes


def create_alias(session: Session, principal: Principal, data: MailAliasCreate) -> MailAlias:
    account = account_for_write(session, principal, data.account_id)
    domain = require_owned(session, account.id, domain_of(data.address), "address")
    if address_in_use(session, data.address):
        raise Conflict(f"The address {data.address} is already in use.")
    host = mail_host_for(session, domain)
    alias = MailAlias(
        account_id=account.id,
        domain_id=domain.id,
        host_id=host.id,
        address=data.address,
        destinations=list(data.destinations),
    )
    session.add(alias)
    session.flush()
    hosts.bump_generations(session, [host.id])
    dkim.ensure_key(session, domain, host.id, principal.user.id)
    return alias


def update_alias(session: Session, alias: MailAlias, data: MailAliasUpdate) -> dict[str, Any]:
    changes = apply_changes(alias, {"destinations": list(data.destinations)})
    if changes:
        mark_pending(alias)
        hosts.bump_generations(session, [alias.host_id])
    return changes
