"""Mailing lists on a lists host, and their rosters."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write, check_count_quota
from panel.core.auth import Principal
from panel.core.errors import Conflict, NotFound
from panel.core.objects import apply_changes, mark_pending
from panel.domains.service import require_owned
from panel.hosts import service as hosts
from panel.lists.models import ListMember, MailingList, MemberRole
from panel.lists.schemas import ListCreate, ListUpdate
from panel.mail.service import address_in_use, domain_of

# A roster is one reconcile's work on the lists host: keep it at a size that stays quick.
MAX_MEMBERS = 20_000


def create_list(session: Session, principal: Principal, data: ListCreate) -> MailingList:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(session, account, "lists", MailingList)
    domain = require_owned(session, account.id, domain_of(data.address), "address")
    if address_in_use(session, data.address):
        raise Conflict(f"The address {data.address} is already in use.")
    host = hosts.place(session, "lists", MailingList)
    mlist = MailingList(
        account_id=account.id,
        domain_id=domain.id,
        host_id=host.id,
        address=data.address,
        owners=list(data.owners),
        policy=data.policy,
        settings=data.settings.merged({}),
    )
    session.add(mlist)
    session.flush()
    hosts.bump_generations(session, [host.id])
    return mlist


def update_list(session: Session, mlist: MailingList, data: ListUpdate) -> dict[str, Any]:
    values = {
        k: v
        for k, v in data.model_dump(exclude_unset=True, exclude={"settings"}).items()
        if v is not None
    }
    if "owners" in values:
        values["owners"] = list(dict.fromkeys(values["owners"]))
    if data.settings is not None:
        values["settings"] = data.settings.merged(dict(mlist.settings))
    changes = apply_changes(mlist, values)
    if changes:
        _changed(session, mlist)
    return changes


def _changed(session: Session, mlist: MailingList) -> None:
    """The host no longer carries what the panel says: mark the list, wake its host."""
    mark_pending(mlist)
    hosts.bump_generations(session, [mlist.host_id])


def get_member(session: Session, mlist: MailingList, member_id: int) -> ListMember:
    """A member of this list only: another list's member id is 404 here."""
    member = session.get(ListMember, member_id)
    if member is None or member.list_id != mlist.id:
        raise NotFound()
    return member


def add_members(
    session: Session, mlist: MailingList, emails: Sequence[str], role: MemberRole
) -> tuple[list[ListMember], int]:
    """Add the addresses not yet on the roster in that role; (added rows, how many were)."""
    wanted = list(dict.fromkeys(emails))
    if role == MemberRole.owner and (dupes := set(wanted) & set(mlist.owners)):
        raise Conflict(f"{', '.join(sorted(dupes))} already own this list (see its owners).")
    present = set(
        session.scalars(
            select(ListMember.email).where(ListMember.list_id == mlist.id, ListMember.role == role)
        )
    )
    new = [e for e in wanted if e not in present]
    if not new:
        return [], len(wanted)
    total = session.scalar(
        select(func.count()).select_from(ListMember).where(ListMember.list_id == mlist.id)
    )
    if (total or 0) + len(new) > MAX_MEMBERS:
        raise Conflict(f"A list holds at most {MAX_MEMBERS} roster entries; this one has {total}.")
    rows = [ListMember(list_id=mlist.id, email=e, role=role) for e in new]
    session.add_all(rows)
    session.flush()
    _changed(session, mlist)
    return rows, len(wanted) - len(new)


def add_member(session: Session, mlist: MailingList, email: str, role: MemberRole) -> ListMember:
    """Add one address; refused if it is on the roster in that role already."""
    rows, _already = add_members(session, mlist, [email], role)
    if not rows:
        raise Conflict(f"{email} is already on this list as {role}.")
    return rows[0]


def remove_member(session: Session, mlist: MailingList, member: ListMember) -> None:
    session.delete(member)
    _changed(session, mlist)
