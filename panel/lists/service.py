"""Mailing lists on a lists host."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from panel.accounts.service import account_for_write, check_count_quota
from panel.core.auth import Principal
from panel.core.errors import Conflict
from panel.core.objects import apply_changes, mark_pending
from panel.domains.service import require_owned
from panel.hosts import service as hosts
from panel.hosts.models import HostRole
from panel.lists.models import MailingList
from panel.lists.schemas import ListCreate, ListUpdate
from panel.mail.service import address_in_use, domain_of


def create_list(session: Session, principal: Principal, data: ListCreate) -> MailingList:
    account = account_for_write(session, principal, data.account_id)
    check_count_quota(session, account, "lists", MailingList)
    domain = require_owned(session, account.id, domain_of(data.address), "address")
    if address_in_use(session, data.address):
        raise Conflict(f"The address {data.address} is already in use.")
    host = hosts.place(session, HostRole.lists, MailingList)
    mlist = MailingList(
        account_id=account.id,
        domain_id=domain.id,
        host_id=host.id,
        address=data.address,
        owners=list(data.owners),
        policy=data.policy,
    )
    session.add(mlist)
    session.flush()
    hosts.bump_generations(session, [host.id])
    return mlist


def update_list(session: Session, mlist: MailingList, data: ListUpdate) -> dict[str, Any]:
    values = {k: v for k, v in data.model_dump(exclude_unset=True).items() if v is not None}
    if "owners" in values:
        values["owners"] = list(dict.fromkeys(values["owners"]))
    changes = apply_changes(mlist, values)
    if changes:
        mark_pending(mlist)
        hosts.bump_generations(session, [mlist.host_id])
    return changes
