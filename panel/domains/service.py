"""Which account owns a name: the closest registered domain above it decides."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.core.auth import Principal
from panel.core.db import ObjectStatus
from panel.core.errors import Conflict, Invalid
from panel.domains.models import Domain


def suffixes(name: str) -> list[str]:
    """``a.b.example.org`` -> itself, ``b.example.org``, ``example.org``, ``org``."""
    labels = name.split(".")
    return [".".join(labels[i:]) for i in range(len(labels))]


def owning_domain(session: Session, name: str) -> Domain | None:
    """The registered domain closest above (or equal to) ``name``, whoever owns it."""
    return session.scalar(
        select(Domain)
        .where(Domain.name.in_(suffixes(name)))
        .order_by(func.length(Domain.name).desc())
        .limit(1)
    )


def require_owned(session: Session, account_id: int, name: str, field: str) -> Domain:
    """The account's domain that ``name`` lives under; a name under another account's
    domain (or under none) is refused with the same words, so nothing leaks."""
    domain = owning_domain(session, name)
    if domain is None or domain.account_id != account_id:
        raise Invalid(
            field,
            f"'{name}' is not under one of this account's domains; add its domain first",
        )
    if domain.status == ObjectStatus.deleting:
        raise Invalid(field, f"the domain '{domain.name}' is being deleted")
    return domain


def create_domain(session: Session, principal: Principal, account_id: int, name: str) -> Domain:
    """Register ``name`` for the account (the caller must be able to write to it)."""
    from panel.accounts.service import account_for_write

    account_for_write(session, principal, account_id)
    if session.scalar(select(Domain.id).where(Domain.name == name)) is not None:
        raise Conflict(f"The domain '{name}' is already registered in the panel.")
    above = owning_domain(session, name)
    if above is not None and above.account_id != account_id:
        raise Invalid("name", f"'{name}' is under a domain that belongs to someone else")
    below = session.scalar(
        select(Domain.id)
        .where(Domain.name.like("%." + name), Domain.account_id != account_id)
        .limit(1)
    )
    if below is not None:
        raise Invalid("name", f"a name under '{name}' belongs to someone else")
    domain = Domain(account_id=account_id, name=name, status=ObjectStatus.active)
    session.add(domain)
    session.flush()
    return domain


def domain_in_use(session: Session, domain: Domain) -> list[str]:
    """What still uses the domain (a domain is deleted only once empty)."""
    from panel.lists.models import MailingList
    from panel.mail.models import MailAlias, Mailbox
    from panel.sites.models import Site, SiteAlias

    used = []
    for label, model in (
        ("sites", Site),
        ("site aliases", SiteAlias),
        ("mailboxes", Mailbox),
        ("mail aliases", MailAlias),
        ("lists", MailingList),
    ):
        if session.scalar(select(model.id).where(model.domain_id == domain.id).limit(1)):
            used.append(label)
    sub = session.scalar(select(Domain.id).where(Domain.name.like("%." + domain.name)).limit(1))
    if sub:
        used.append("subdomains")
    return used


def delete_domain(session: Session, domain: Domain) -> None:
    """Remove a domain that nothing uses any more; refused while something still does."""
    used = domain_in_use(session, domain)
    if used:
        raise Conflict(f"The domain is still used by {', '.join(used)}; delete those first.")
    session.delete(domain)
