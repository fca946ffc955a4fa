"""The panel's own SSH identity: one ed25519 key pair in the data directory."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from panel.core.validation import host_key_fingerprint


def ensure_key(path: Path) -> Path:
    """Create the key pair if missing (private key 0600); returns the private key path."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = Ed25519PrivateKey.generate()
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.OpenSSH,
        serialization.NoEncryption(),
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(private)
    path.with_suffix(".pub").write_bytes(public + b" konbit-panel\n")
    return path


def public_key(path: Path) -> str:
    """The line a sysadmin adds to the host's ``authorized_keys``."""
    return path.with_suffix(".pub").read_text().strip()


def fingerprint(path: Path) -> str:
    return host_key_fingerprint(public_key(path))
