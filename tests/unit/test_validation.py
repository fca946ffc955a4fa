"""Normalisation and the patterns, without a database."""

from __future__ import annotations

import pytest

from panel.core.validation import (
    check_db_identifier,
    check_host_key,
    check_rel_path,
    host_key_fingerprint,
    normalize_address,
    normalize_domain,
)
from panel.databases.secrets import mysql_native_hash, scram_sha256_verifier
from tests.conftest import host_key


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Example.ORG.", "example.org"),
        ("bücher.de", "xn--bcher-kva.de"),
        ("ｅｘａｍｐｌｅ.org", "example.org"),
        ("пример.рф", "xn--e1afmkfd.xn--p1ai"),
    ],
)
def test_domains_are_normalised(raw: str, expected: str) -> None:
    assert normalize_domain(raw) == expected


def test_addresses_are_lowercased() -> None:
    assert normalize_address("Info.Desk@Bücher.DE") == "info.desk@xn--bcher-kva.de"


def test_db_names_cannot_cross_prefixes() -> None:
    assert check_db_identifier("acme_coop_shop", "acme-coop", "database") == "acme_coop_shop"
    with pytest.raises(ValueError, match="no '_'"):
        check_db_identifier("acme_coop_shop", "acme", "database")


def test_paths() -> None:
    assert check_rel_path("www/site_1/public") == "www/site_1/public"
    for bad in ("../x", "a/../b", "/a", "a/.b", "-x", "a/-x", "a//b"):
        with pytest.raises(ValueError):
            check_rel_path(bad)


def test_host_keys_and_fingerprints() -> None:
    key = host_key()
    assert check_host_key(key + " root@web1") == key
    assert host_key_fingerprint(key).startswith("SHA256:")
    with pytest.raises(ValueError):
        check_host_key("ssh-ed25519 AAAAB3NzaC1yc2EAAAADAQABAAABAQ")  # an RSA blob, mislabelled


def test_engine_verifiers() -> None:
    # Known answer: MariaDB's PASSWORD('password').
    assert mysql_native_hash("password") == "*2470C0C06DEE42FD1618BB99005ADCA2EC9D1E19"
    # RFC 7677's test vector for SCRAM-SHA-256 (user "user", password "pencil").
    import base64

    salt = base64.b64decode("W22ZaJ0SNY7soEsUEjb6gQ==")
    v = scram_sha256_verifier("pencil", 4096, salt)
    assert v.startswith("SCRAM-SHA-256$4096:W22ZaJ0SNY7soEsUEjb6gQ==$")
    stored, server = v.split("$", 2)[2].split(":")
    assert server == "wfPLwcE6nTWhTAmQ7tl2KeoiWGPlZqQxSrmfPwDl2dU="
    import hashlib
    import hmac

    salted = hashlib.pbkdf2_hmac("sha256", b"pencil", salt, 4096)
    client_key = hmac.new(salted, b"Client Key", hashlib.sha256).digest()
    assert base64.b64decode(stored) == hashlib.sha256(client_key).digest()
