"""``/api/v1/hosts`` and ``/api/v1/applies`` (staff)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request, Response
from sqlalchemy import delete, select, update

from panel.audit import service as audit
from panel.core.auth import Principal
from panel.core.errors import Conflict, NotFound, Unavailable
from panel.core.http import (
    READ_ERRORS,
    WRITE_ERRORS,
    IfMatch,
    ListDep,
    PrincipalDep,
    SessionDep,
    check_if_match,
    set_etag,
    text_match,
)
from panel.core.idempotency import Idempotency, get_idempotency
from panel.core.objects import finish_create, finish_update
from panel.core.pagination import Page, paginate
from panel.hosts import service
from panel.hosts.models import Apply, Host
from panel.hosts.schemas import (
    ApplyOut,
    HostCreate,
    HostOut,
    HostUpdate,
    PlanChange,
    PlanOut,
    SshKeyOut,
)
from panel.hosts.service import bump_generations

hosts = APIRouter(prefix="/hosts", tags=["hosts"])
applies = APIRouter(prefix="/applies", tags=["applies"])
panel_info = APIRouter(prefix="/panel", tags=["hosts"])


def _host(session: SessionDep, principal: Principal, host_id: int) -> Host:
    host = session.get(Host, host_id) if principal.is_staff else None
    if host is None:
        raise NotFound("host")
    return host


@hosts.get("", response_model=Page[HostOut], responses=READ_ERRORS)
def list_hosts(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """List hosts (staff)."""
    principal.require_staff()
    stmt = select(Host)
    if params.q:
        stmt = stmt.where(text_match(Host.name, params.q))
    rows, cursor = paginate(session, stmt, Host.id, params.cursor, params.limit)
    return Page(items=[HostOut.of(r) for r in rows], next_cursor=cursor)


@hosts.post("", status_code=201, response_model=HostOut, responses=WRITE_ERRORS)
def add_host(
    body: HostCreate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    idem: Annotated[Idempotency, Depends(get_idempotency)],
) -> Any:
    """Add a host with its pinned host key (staff)."""
    principal.require_staff()
    if replay := idem.replay(session, principal, body):
        return replay
    host = service.add_host(session, body)
    out = HostOut.of(host)
    return finish_create(
        session, principal, idem, body, host, out, response, body.model_dump(mode="json")
    )


@hosts.get("/{host_id}", response_model=HostOut, responses=READ_ERRORS)
def get_host(host_id: int, session: SessionDep, principal: PrincipalDep, response: Response) -> Any:
    """One host (staff)."""
    host = _host(session, principal, host_id)
    set_etag(response, host)
    return HostOut.of(host)


@hosts.patch("/{host_id}", response_model=HostOut, responses=WRITE_ERRORS)
def update_host(
    host_id: int,
    body: HostUpdate,
    session: SessionDep,
    principal: PrincipalDep,
    response: Response,
    if_match: IfMatch = None,
) -> Any:
    """Change a host's address, key, roles or settings (staff); marks it dirty."""
    host = _host(session, principal, host_id)
    check_if_match(if_match, host)
    changes = service.update_host(session, host, body)
    finish_update(session, principal, host, changes, response)
    return HostOut.of(host)


@hosts.delete("/{host_id}", status_code=204, responses=WRITE_ERRORS)
def remove_host(host_id: int, session: SessionDep, principal: PrincipalDep) -> Response:
    """Forget a host that carries nothing any more (staff)."""
    host = _host(session, principal, host_id)
    from panel.databases.models import Database, DatabaseUser
    from panel.lists.models import MailingList
    from panel.mail.models import MailAlias, Mailbox
    from panel.sites.models import Site

    for model in (Site, Mailbox, MailAlias, MailingList, Database, DatabaseUser):
        if session.scalar(select(model.id).where(model.host_id == host.id).limit(1)):
            raise Conflict(
                f"The host still carries {model.__tablename__.replace('_', ' ')}; "
                "move or delete them first."
            )
    audit.record(session, principal, "delete", host, {"name": host.name})
    session.execute(delete(Apply).where(Apply.host_id == host.id))
    session.delete(host)
    session.commit()
    return Response(status_code=204)


@hosts.get("/{host_id}/plan", response_model=PlanOut, responses=READ_ERRORS)
def plan(host_id: int, session: SessionDep, principal: PrincipalDep, request: Request) -> Any:
    """The diff a reconcile would apply now, without applying it (staff)."""
    _host(session, principal, host_id)
    from panel.hosts.reconcile import plan_host
    from provisioners.transport import TransportError

    settings = request.app.state.settings
    try:
        _, result = plan_host(request.app.state.db, settings, host_id, request.app.state.plugins)
    except TransportError as exc:
        raise Unavailable(str(exc)) from None
    return PlanOut(
        host_id=host_id,
        noop=result.is_noop,
        summary=result.summary(),
        changes=[PlanChange(path=c.path, kind=c.kind) for c in result.changes],
        steps=[s.description for s in result.steps],
        diff=result.diff(),
    )


@hosts.post("/{host_id}/reconcile", status_code=202, response_model=HostOut, responses=WRITE_ERRORS)
def force_reconcile(
    host_id: int, session: SessionDep, principal: PrincipalDep, request: Request
) -> Any:
    """Reconcile now, even if nothing changed in the panel (repairs drift) (staff)."""
    host = _host(session, principal, host_id)
    bump_generations(session, [host.id])
    session.execute(update(Host).where(Host.id == host.id).values(retry_at=None))
    audit.record(session, principal, "reconcile", host, {})
    session.commit()
    session.refresh(host)
    return HostOut.of(host)


@panel_info.get("/ssh-key", response_model=SshKeyOut, responses=READ_ERRORS)
def ssh_key(principal: PrincipalDep, request: Request) -> Any:
    """The panel's SSH public key, to authorize on a host (staff)."""
    principal.require_staff()
    from panel.hosts.sshkey import ensure_key, fingerprint, public_key

    path = ensure_key(request.app.state.settings.ssh_key_path)
    return SshKeyOut(public_key=public_key(path), fingerprint=fingerprint(path))


@applies.get("", response_model=Page[ApplyOut], responses=READ_ERRORS)
def list_applies(session: SessionDep, principal: PrincipalDep, params: ListDep) -> Any:
    """Reconciles, oldest first; filter by host (staff)."""
    principal.require_staff()
    stmt = select(Apply)
    if params.host_id is not None:
        stmt = stmt.where(Apply.host_id == params.host_id)
    rows, cursor = paginate(session, stmt, Apply.id, params.cursor, params.limit)
    return Page(items=[ApplyOut.of(r) for r in rows], next_cursor=cursor)


@applies.get("/{apply_id}", response_model=ApplyOut, responses=READ_ERRORS)
def get_apply(apply_id: int, session: SessionDep, principal: PrincipalDep) -> Any:
    """One reconcile with its diff and log (staff)."""
    apply = session.get(Apply, apply_id) if principal.is_staff else None
    if apply is None:
        raise NotFound("apply")
    return ApplyOut.of(apply)
