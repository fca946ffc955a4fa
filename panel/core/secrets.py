"""Secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under one key the operator keeps.

The key is ``KONBIT_SECRET_KEY`` or, by default, ``<data_dir>/secret.key`` (made 0600 on
first use). Several panel and worker machines on one database must be given the same key.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken

from panel.core.settings import Settings

_lock = threading.Lock()


class SecretError(Exception):
    """A sealed value could not be opened (another key, or damaged)."""


def _key(settings: Settings) -> bytes:
    if settings.secret_key:
        return settings.secret_key.encode()
    path = Path(settings.data_dir) / "secret.key"
    with _lock:
        if not path.exists():
            # Written aside, then linked into place: another process never reads half a
            # key, and the first one to link wins.
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".secret.key.{os.getpid()}.{threading.get_ident()}")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "wb") as f:
                f.write(Fernet.generate_key())
            try:
                os.link(tmp, path)
            except FileExistsError:
                pass
            finally:
                tmp.unlink()
        return path.read_bytes().strip()


def seal(settings: Settings, plain: bytes) -> str:
    return Fernet(_key(settings)).encrypt(plain).decode()


def unseal(settings: Settings, token: str) -> bytes:
    try:
        return Fernet(_key(settings)).decrypt(token.encode())
    except (InvalidToken, ValueError) as exc:
        raise SecretError(
            "a secret stored in the panel cannot be decrypted with this process's key "
            "(KONBIT_SECRET_KEY or <data_dir>/secret.key): give every process the same key"
        ) from exc
