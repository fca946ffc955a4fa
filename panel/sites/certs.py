"""Certificates: parse chains, check a member's upload, say when to renew.

Everything here is pure (``cryptography`` only): no database, no network.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtensionOID, NameOID

from panel.core.errors import ProblemError

MAX_CHAIN = 10


class CertificateRejected(ProblemError):
    """A 422 listing every field at fault (``certificate``, ``private_key``)."""

    status, kind, title = 422, "validation-error", "Invalid input"

    def __init__(self, errors: list[dict[str, str]]) -> None:
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        super().__init__(detail, errors=errors)


@dataclass(frozen=True)
class CertInfo:
    serial: str  # lower-case hex, as ``openssl x509 -serial`` prints it (without 0x)
    issuer: str
    names: tuple[str, ...]
    not_before: dt.datetime
    not_after: dt.datetime

    @property
    def renew_at(self) -> dt.datetime:
        return renew_at(self.not_before, self.not_after)


def renew_at(not_before: dt.datetime, not_after: dt.datetime) -> dt.datetime:
    """Two thirds into the certificate's life: day 60 of Let's Encrypt's 90, and never so
    late that a week of failed retries could let it expire."""
    return not_before + (not_after - not_before) * 2 / 3


def load_chain(pem: str) -> list[x509.Certificate]:
    """Every certificate of a PEM bundle, in order; ValueError when there is none."""
    data = pem.encode()
    if b"-----BEGIN CERTIFICATE-----" not in data:
        raise ValueError("is not a PEM certificate (-----BEGIN CERTIFICATE-----)")
    try:
        certs = x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise ValueError(f"cannot be read as PEM certificates ({exc})") from None
    if not certs:
        raise ValueError("holds no certificate")
    return certs


def dump_chain(certs: Sequence[x509.Certificate]) -> str:
    return "".join(c.public_bytes(serialization.Encoding.PEM).decode() for c in certs)


def dns_names(cert: x509.Certificate) -> tuple[str, ...]:
    """The names a certificate is valid for: its subjectAltName DNS entries (browsers ignore
    the common name), lower case."""
    try:
        san = cert.extensions.get_extension_for_oid(ExtensionOID.SUBJECT_ALTERNATIVE_NAME)
    except x509.ExtensionNotFound:
        return ()
    value = san.value
    if not isinstance(value, x509.SubjectAlternativeName):
        return ()
    return tuple(n.lower() for n in value.get_values_for_type(x509.DNSName))


def covers(patterns: Sequence[str], name: str) -> bool:
    """Whether a name matches an entry (a wildcard stands for exactly one left label)."""
    name = name.lower()
    for pattern in patterns:
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name and name.split(".", 1)[1] == pattern[2:]:
            return True
    return False


def info(cert: x509.Certificate) -> CertInfo:
    issuer = cert.issuer.get_attributes_for_oid(NameOID.COMMON_NAME)
    return CertInfo(
        serial=format(cert.serial_number, "x"),
        issuer=str(issuer[0].value) if issuer else cert.issuer.rfc4514_string(),
        names=dns_names(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
    )


def public_der(key: Any) -> bytes:
    """SubjectPublicKeyInfo DER of a public or private key: what "matches" compares."""
    public = key.public_key() if hasattr(key, "public_key") else key
    der: bytes = public.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return der


def _key_error(key: object) -> str | None:
    if isinstance(key, rsa.RSAPrivateKey):
        return None if key.key_size >= 2048 else f"an RSA key of {key.key_size} bits is too weak"
    if isinstance(key, ec.EllipticCurvePrivateKey):
        if key.curve.name in ("secp256r1", "secp384r1"):
            return None
        return f"curve {key.curve.name} is not served by browsers (use P-256 or P-384)"
    return "must be an RSA (2048 bits or more) or ECDSA (P-256, P-384) key"


def check_upload(
    chain_pem: str, key_pem: str, names: Sequence[str], now: dt.datetime
) -> tuple[CertInfo, str, bytes]:
    """A member's certificate and key, checked as a browser and the web server would:
    the key matches the leaf, each certificate is signed by the next one, none has expired,
    and the leaf covers every name of the site.  Returns the chain and key normalised (PEM,
    leaf first); raises ``CertificateRejected`` naming every field at fault."""
    errors: list[dict[str, str]] = []

    def bad(field: str, reason: str) -> None:
        errors.append({"field": field, "reason": reason})

    certs: list[x509.Certificate] = []
    try:
        certs = load_chain(chain_pem)
    except ValueError as exc:
        bad("certificate", str(exc))
    key = None
    if "ENCRYPTED" in key_pem:
        bad("private_key", "is encrypted; upload it without a passphrase")
    else:
        try:
            key = serialization.load_pem_private_key(key_pem.encode(), password=None)
        except (ValueError, TypeError):
            bad("private_key", "is not a PEM private key (-----BEGIN PRIVATE KEY-----)")
        except Exception:  # cryptography raises UnsupportedAlgorithm and others
            bad("private_key", "is not a private key this panel can read")
    if key is not None and (reason := _key_error(key)):
        bad("private_key", reason)
        key = None
    if not certs:
        raise CertificateRejected(errors)
    if len(certs) > MAX_CHAIN:
        bad("certificate", f"holds {len(certs)} certificates; at most {MAX_CHAIN}")
    leaf = certs[0]
    if key is not None and public_der(key) != public_der(leaf.public_key()):
        bad("private_key", "does not match the certificate (the first one of the chain)")
    for i in range(len(certs) - 1):
        child, parent = certs[i], certs[i + 1]
        try:
            child.verify_directly_issued_by(parent)
        except (ValueError, TypeError, InvalidSignature):
            bad(
                "certificate",
                f"chain out of order: certificate {i + 2} did not issue certificate {i + 1}; "
                "put the site's certificate first, then each issuer in turn",
            )
            break
    for i, cert in enumerate(certs):
        which = "the certificate" if i == 0 else f"certificate {i + 1} of the chain"
        if cert.not_valid_after_utc <= now:
            bad("certificate", f"{which} expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC")
        elif cert.not_valid_before_utc > now:
            bad(
                "certificate",
                f"{which} is not valid before {cert.not_valid_before_utc:%Y-%m-%d %H:%M} UTC",
            )
    names_ok = dns_names(leaf)
    missing = [n for n in names if not covers(names_ok, n)]
    if missing:
        bad(
            "certificate",
            f"does not cover {', '.join(missing)} (it is for {', '.join(names_ok) or 'no name'})",
        )
    if errors or key is None:
        raise CertificateRejected(errors)
    key_out = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return info(leaf), dump_chain(certs), key_out
