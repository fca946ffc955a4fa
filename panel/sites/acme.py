"""HTTPS by ACME (RFC 8555) with HTTP-01, through certbot's ``acme`` library.

For each site in mode ``acme`` that needs a certificate (none yet, two thirds of its life
gone, a renewal asked for, names changed), the worker, over one SSH connection to the
site's web host:

1. has the host generate the private key and a CSR with ``openssl`` (the key is written
   0600 under ``/etc/konbit/private/site-<id>/`` and never leaves the host; only the CSR
   comes back),
2. places an order, writes each HTTP-01 answer under ``/var/lib/konbit/acme-challenge/``
   (every vhost serves it on port 80, redirect or not), tells the CA to validate, waits,
3. stores the issued chain (public) in the panel and bumps the host's generation: the next
   reconcile renders it beside the vhost, checked by ``nginx -t``/``apachectl -t`` first.

A failure is recorded on the site (``https_status: failed`` with the CA's reason) and
retried with exponential back-off; the certificate the site serves stays until a new one
is issued.  One worker per site at a time (``claimed_until``, a lease on the row).
"""

# mypy: disable-error-code="type-abstract"
# (``offered`` takes a Protocol class as its key: python/mypy#4717.)

from __future__ import annotations

import datetime as dt
import logging
import re
import secrets
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import requests
from acme import challenges, client, errors, messages
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from josepy.jwa import ES256
from josepy.jwk import JWK, JWKEC
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from panel.core.db import Database, ObjectStatus, utcnow
from panel.core.secrets import seal, unseal
from panel.core.settings import Settings
from panel.dns import service as dns
from panel.hosts.models import Host
from panel.hosts.reconcile import connect
from panel.hosts.service import bump_generations
from panel.sites import certs
from panel.sites.models import AcmeAccount, HttpsMode, Site, SiteAlias, SiteCertificate
from provisioners.api import Provisioner, SiteKeys, offered
from provisioners.api.operations import Command
from provisioners.registry import load_plugins
from provisioners.transport import Connection, Result, Target, TransportError

log = logging.getLogger("konbit.acme")

CLAIM = dt.timedelta(minutes=10)
BACKOFF_MAX = dt.timedelta(days=1)
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


@dataclass(frozen=True)
class Outcome:
    site_id: int
    ok: bool
    message: str
    serial: str | None = None
    seconds: float = 0.0


class AcmeFailure(Exception):
    """One site's order failed; the message is what the member reads."""


def _now() -> dt.datetime:
    return utcnow()


# -- which sites, and claiming them ---------------------------------------------------------


def _due_query(now: dt.datetime, host_id: int | None) -> Any:
    c = SiteCertificate
    stmt = (
        select(Site.id, Site.host_id)
        .join(Host, Host.id == Site.host_id)
        .outerjoin(c, c.site_id == Site.id)
        .where(
            Site.https == HttpsMode.acme,
            Site.enabled.is_(True),
            Site.status == ObjectStatus.active,
            Host.enabled.is_(True),
            or_(
                c.site_id.is_(None),
                c.chain_pem.is_(None),
                c.source != HttpsMode.acme,
                c.renew_requested.is_(True),
                c.renew_at <= now,
            ),
            or_(c.retry_at.is_(None), c.retry_at <= now),
            or_(c.claimed_until.is_(None), c.claimed_until < now),
        )
        .order_by(Site.id)
    )
    return stmt if host_id is None else stmt.where(Site.host_id == host_id)


def due_sites(
    session: Session, now: dt.datetime | None = None, host_id: int | None = None
) -> list[tuple[int, int]]:
    """(site id, host id) of every site (of one host) that needs an ACME order now."""
    return [(r[0], r[1]) for r in session.execute(_due_query(now or _now(), host_id)).all()]


def due_hosts(session: Session, now: dt.datetime | None = None) -> list[int]:
    return sorted({host for _site, host in due_sites(session, now)})


def _claim(session: Session, site_id: int, now: dt.datetime) -> bool:
    """Take the site for one order; False when another worker has it."""
    if session.get(SiteCertificate, site_id) is None:
        try:
            with session.begin_nested():
                row = SiteCertificate(site_id=site_id, acme_state="pending")
                row.claimed_until = now + CLAIM
                session.add(row)
            return True
        except IntegrityError:
            pass
    result = session.execute(
        update(SiteCertificate)
        .where(
            SiteCertificate.site_id == site_id,
            or_(SiteCertificate.claimed_until.is_(None), SiteCertificate.claimed_until < now),
        )
        .values(claimed_until=now + CLAIM)
        .execution_options(synchronize_session=False)
    )
    return getattr(result, "rowcount", 0) == 1


# -- the ACME account -----------------------------------------------------------------------


def _network(settings: Settings, key: JWK | None) -> client.ClientNetwork:
    net = client.ClientNetwork(key, alg=ES256, user_agent="konbit", timeout=30)
    if settings.acme_ca_bundle:
        # requests takes a CA file where acme's signature says bool.
        net.verify_ssl = str(settings.acme_ca_bundle)  # type: ignore[assignment]
    return net


def _account_key(pem: bytes | None) -> tuple[JWKEC, bytes]:
    """The account's P-256 key as josepy wants it, and as PEM (new when ``pem`` is None)."""
    if pem is None:
        private = ec.generate_private_key(ec.SECP256R1())
        pem = private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    loaded = serialization.load_pem_private_key(pem, password=None)
    if not isinstance(loaded, ec.EllipticCurvePrivateKey):
        raise ValueError("the stored ACME account key is not an ECDSA key")
    return JWKEC(key=loaded), pem


def _register(acme: client.ClientV2, settings: Settings) -> messages.RegistrationResource:
    reg = messages.NewRegistration.from_data(
        email=settings.acme_email, terms_of_service_agreed=True
    )
    return acme.new_account(reg)


def account_client(db: Database, settings: Settings) -> client.ClientV2:
    """A client logged in to the configured directory with the panel's account (registered
    on first use; its key sealed in the panel database, shared by every worker)."""
    url = settings.acme_directory
    with db.session() as session:
        row = session.scalar(select(AcmeAccount).where(AcmeAccount.directory == url))
        sealed, uri = (row.key_sealed, row.uri) if row else (None, None)
    if sealed is not None:
        key, pem = _account_key(unseal(settings, sealed))
        net = _network(settings, key)
        acme = client.ClientV2(client.ClientV2.get_directory(url, net), net)
        if uri:
            net.account = messages.RegistrationResource(uri=uri, body=messages.Registration())
            try:
                acme.query_registration(net.account)
                return acme
            except messages.Error as exc:
                if exc.code not in ("accountDoesNotExist", "unauthorized"):
                    raise
                log.info("ACME account gone; registering again", extra={"directory": url})
        net.account = None
    else:
        key, pem = _account_key(None)
        net = _network(settings, key)
        acme = client.ClientV2(client.ClientV2.get_directory(url, net), net)
    try:
        regr = _register(acme, settings)
    except errors.ConflictError as exc:  # the key is already an account: that one
        regr = messages.RegistrationResource(uri=str(exc), body=messages.Registration())
        net.account = regr
    with db.session() as session:
        row = session.scalar(select(AcmeAccount).where(AcmeAccount.directory == url))
        if row is None:
            session.add(AcmeAccount(directory=url, key_sealed=seal(settings, pem), uri=regr.uri))
        else:
            row.key_sealed, row.uri = seal(settings, pem), regr.uri
        try:
            session.commit()
        except IntegrityError:  # another worker registered at the same moment: use ours
            session.rollback()
    log.info("ACME account registered", extra={"directory": url})
    return acme


# -- one order ------------------------------------------------------------------------------


def _problem_text(exc: BaseException) -> str:
    if isinstance(exc, errors.ValidationError):
        parts = []
        for authzr in exc.failed_authzrs:
            name = authzr.body.identifier.value
            for chall in authzr.body.challenges:
                if chall.error is not None:
                    detail = chall.error.detail or chall.error.description or chall.error.code
                    parts.append(f"{name}: {detail}")
        return "the CA could not fetch the HTTP-01 challenge: " + "; ".join(parts)
    if isinstance(exc, messages.Error):
        return f"the CA refused: {exc.detail or exc.description or exc.code}"
    if isinstance(exc, errors.TimeoutError):
        return "the CA did not finish validating in time"
    if isinstance(exc, requests.RequestException):
        return f"cannot reach the ACME server: {exc.__class__.__name__}: {exc}"
    return str(exc) or exc.__class__.__name__


def _run(conn: Connection, command: Command) -> Result:
    return conn.run(command.argv, stdin=command.stdin)


def _order(
    acme: client.ClientV2,
    conn: Connection,
    keys: SiteKeys,
    settings: Settings,
    site_id: int,
    names: Sequence[str],
    db: Database | None = None,
    plugins: Sequence[Provisioner] = (),
) -> tuple[str, str]:
    """Key and CSR on the host, order, challenges, certificate: (key name, chain PEM).
    HTTP-01 for each name; DNS-01 for a wildcard (``*.example.org``): its answer goes in the
    zone, on every DNS server, before the CA is asked to look (``panel.dns.service``)."""
    key_name = f"acme-{secrets.token_hex(8)}.key"
    made = _run(conn, keys.new_key_and_csr(site_id, key_name, names))
    if not made.ok or b"BEGIN CERTIFICATE REQUEST" not in made.stdout:
        raise AcmeFailure(f"openssl on the web host failed: {made.error_text(500).strip()}")
    csr_pem = made.stdout
    tokens: list[str] = []
    published: list[int] = []
    try:
        order = acme.new_order(csr_pem)
        answers, in_dns = _challenges(acme, conn, keys, order, tokens)
        if in_dns:
            if db is None:
                raise AcmeFailure("a wildcard certificate needs the panel's DNS (DNS-01)")
            try:
                published = dns.publish(db, settings, plugins, in_dns, f"acme-site-{site_id}")
            except dns.DnsUnavailable as exc:
                raise AcmeFailure(str(exc)) from None
        for chall, response in answers:
            acme.answer_challenge(chall, response)
        deadline = dt.datetime.now() + dt.timedelta(seconds=settings.acme_timeout_seconds)
        done = acme.poll_and_finalize(order, deadline)
    except BaseException:
        _run(conn, keys.remove_key(site_id, key_name))
        raise
    finally:
        if tokens:
            _run(conn, keys.remove_challenges(tokens))
        if published and db is not None:
            dns.withdraw(db, published)
    chain = certs.load_chain(done.fullchain_pem)
    csr = x509.load_pem_x509_csr(csr_pem)
    if certs.public_der(chain[0].public_key()) != certs.public_der(csr.public_key()):
        _run(conn, keys.remove_key(site_id, key_name))
        raise AcmeFailure("the CA returned a certificate for another key")
    return key_name, certs.dump_chain(chain)


def _challenges(
    acme: client.ClientV2,
    conn: Connection,
    keys: SiteKeys,
    order: messages.OrderResource,
    tokens: list[str],
) -> tuple[list[tuple[Any, Any]], list[tuple[str, str]]]:
    """Each pending authorization's challenge and response; HTTP-01 answers written on
    the web host (their tokens appended to ``tokens``), DNS-01 ones returned to be put in
    the zone: (name, value)."""
    answers: list[tuple[Any, Any]] = []
    in_dns: list[tuple[str, str]] = []
    for authzr in order.authorizations:
        if authzr.body.status == messages.STATUS_VALID:
            continue
        name = authzr.body.identifier.value
        kind = challenges.DNS01 if authzr.body.wildcard else challenges.HTTP01
        chall = next((c for c in authzr.body.challenges if isinstance(c.chall, kind)), None)
        if chall is None:
            shown = f"*.{name}" if authzr.body.wildcard else name
            raise AcmeFailure(f"the CA offers no {kind.typ.upper()} challenge for {shown}")
        response, validation = chall.response_and_validation(acme.net.key)
        if authzr.body.wildcard:
            in_dns.append((name, validation))
        else:
            token = chall.chall.encode("token")
            if not _TOKEN.match(token):
                raise AcmeFailure("the CA sent a challenge token of an unexpected form")
            written = _run(conn, keys.write_challenge(token, validation.encode()))
            if not written.ok:
                raise AcmeFailure(f"cannot write the challenge: {written.error_text(300)}")
            tokens.append(token)
        answers.append((chall, response))
    return answers, in_dns


def _backoff(settings: Settings, failures: int) -> dt.timedelta:
    delay = settings.acme_retry_base_seconds * 2 ** max(failures - 1, 0)
    return min(dt.timedelta(seconds=delay), BACKOFF_MAX)


def _record_success(
    db: Database, site_id: int, key_name: str, chain_pem: str, names: Sequence[str]
) -> certs.CertInfo:
    meta = certs.info(certs.load_chain(chain_pem)[0])
    with db.session() as session:
        row = session.get_one(SiteCertificate, site_id)
        row.source, row.chain_pem, row.key_name, row.key_sealed = "acme", chain_pem, key_name, None
        row.names = list(meta.names or names)
        row.serial, row.issuer = meta.serial, meta.issuer
        row.not_before, row.not_after, row.renew_at = meta.not_before, meta.not_after, meta.renew_at
        row.acme_state, row.reason, row.failures = "valid", None, 0
        row.retry_at, row.renew_requested, row.claimed_until = None, False, None
        site = session.get(Site, site_id)
        if site is not None and site.status != ObjectStatus.deleting:
            if site.status != ObjectStatus.failed:
                site.status, site.status_reason = ObjectStatus.pending, None
            site.updated_at = utcnow()
            bump_generations(session, [site.host_id])
        session.commit()
    return meta


def _record_failure(db: Database, settings: Settings, site_id: int, message: str) -> None:
    with db.session() as session:
        row = session.get_one(SiteCertificate, site_id)
        row.failures += 1
        retry = _now() + _backoff(settings, row.failures)
        still = ""
        if row.chain_pem and row.not_after:
            still = f"; still serving the certificate valid until {row.not_after:%Y-%m-%d} UTC"
        row.acme_state = "failed"
        row.reason = (
            f"{message}{still}; attempt {row.failures}, next at {retry:%Y-%m-%d %H:%M} UTC"
        )[:2000]
        row.retry_at, row.claimed_until = retry, None
        session.commit()


def run_host(
    db: Database,
    settings: Settings,
    host_id: int,
    only: Sequence[int] | None = None,
    plugins: Sequence[Provisioner] | None = None,
) -> list[Outcome]:
    """Order a certificate for every due site of one host (or the ``only`` ones), with
    the key and challenge operations of the installed ``plugins`` (loaded when not
    given: a missing one raises ``NotOffered`` before any site is claimed)."""
    plugins = load_plugins() if plugins is None else plugins
    keys = offered(plugins, SiteKeys)
    now = _now()
    with db.session() as session:
        host = session.get(Host, host_id)
        if host is None:
            return []
        target = Target(host.name, host.address, host.ssh_port, host.ssh_user, host.host_key)
        wanted = [s for s, _h in due_sites(session, now, host_id)]
        if only is not None:
            wanted = [s for s in wanted if s in only]
        claimed = []
        for site_id in wanted:
            if _claim(session, site_id, now):
                claimed.append(site_id)
        session.commit()
        names = {
            s.id: [s.domain] for s in session.scalars(select(Site).where(Site.id.in_(claimed)))
        }
        for site_id, name in session.execute(
            select(SiteAlias.site_id, SiteAlias.name)
            .where(SiteAlias.site_id.in_(claimed))
            .order_by(SiteAlias.id)
        ):
            names[site_id].append(name)
    if not claimed:
        return []
    outcomes: list[Outcome] = []
    try:
        acme = account_client(db, settings)
    except Exception as exc:
        message = f"ACME account: {_problem_text(exc)}"
        for site_id in claimed:
            _record_failure(db, settings, site_id, message)
        log.warning("ACME account unavailable", extra={"host_id": host_id, "error": message})
        return [Outcome(s, False, message) for s in claimed]
    try:
        with connect(settings, target) as conn:
            for site_id in claimed:
                outcomes.append(
                    _one(db, settings, acme, conn, keys, site_id, names[site_id], plugins)
                )
    except TransportError as exc:
        done = {o.site_id for o in outcomes}
        for site_id in claimed:
            if site_id not in done:
                _record_failure(db, settings, site_id, f"web host: {exc}")
                outcomes.append(Outcome(site_id, False, str(exc)))
    return outcomes


def _one(
    db: Database,
    settings: Settings,
    acme: client.ClientV2,
    conn: Connection,
    keys: SiteKeys,
    site_id: int,
    names: Sequence[str],
    plugins: Sequence[Provisioner] = (),
) -> Outcome:
    started = time.monotonic()
    try:
        key_name, chain_pem = _order(acme, conn, keys, settings, site_id, names, db, plugins)
    except TransportError:
        raise
    except Exception as exc:
        message = _problem_text(exc)
        _record_failure(db, settings, site_id, message)
        log.warning(
            "ACME order failed",
            extra={"site_id": site_id, "error": message, "seconds": time.monotonic() - started},
        )
        return Outcome(site_id, False, message, seconds=time.monotonic() - started)
    meta = _record_success(db, site_id, key_name, chain_pem, names)
    seconds = time.monotonic() - started
    log.info(
        "certificate issued",
        extra={"site_id": site_id, "serial": meta.serial, "seconds": round(seconds, 2)},
    )
    return Outcome(site_id, True, "issued", meta.serial, seconds)
