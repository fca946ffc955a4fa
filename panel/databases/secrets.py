"""Engine-native password verifiers, so the panel never stores a database password.

MariaDB accepts ``IDENTIFIED BY PASSWORD '<mysql_native_password hash>'`` and PostgreSQL
accepts a SCRAM-SHA-256 verifier as the password of ``CREATE/ALTER ROLE``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os


def mysql_native_hash(password: str) -> str:
    inner = hashlib.sha1(password.encode()).digest()  # noqa: S324 - the engine's own scheme
    return "*" + hashlib.sha1(inner).hexdigest().upper()  # noqa: S324


def scram_sha256_verifier(password: str, iterations: int = 4096, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    salted = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    stored_key = hashlib.sha256(client_key).digest()
    server_key = hmac.new(salted, b"Server Key", hashlib.sha256).digest()

    def b64(raw: bytes) -> str:
        return base64.b64encode(raw).decode()

    return f"SCRAM-SHA-256${iterations}:{b64(salt)}${b64(stored_key)}:{b64(server_key)}"


def verifier_for(engine: str, password: str) -> str:
    return mysql_native_hash(password) if engine == "mariadb" else scram_sha256_verifier(password)
