"""The mail maps and users file: what a value can and cannot put there."""

from __future__ import annotations

import dataclasses

import pytest

from panel.mail.service import hash_mail_password
from provisioners.api import AccountView, DesiredState, HostView, MailAliasView, MailboxView
from provisioners.mail import Mail

ACCOUNT = AccountView(1, "acme", "active")
HASH = hash_mail_password("a long enough password")


def _box(i: int, address: str, **kw: object) -> MailboxView:
    values: dict[str, object] = {
        "id": i,
        "version": 1,
        "account": ACCOUNT,
        "address": address,
        "password_hash": HASH,
        "quota_mb": 100,
        "enabled": True,
        "deleting": False,
    }
    return MailboxView(**{**values, **kw})  # type: ignore[arg-type]


def _files(**parts: object) -> dict[str, str]:
    state = DesiredState(host=HostView(1, "mail1", ("mail",), {}), **parts)  # type: ignore[arg-type]
    return {f.path: f.content.decode() for f in Mail().render(state)}


def test_maps_hold_each_domain_mailbox_and_alias_once() -> None:
    files = _files(
        mailboxes=(_box(1, "ann@acme.test"), _box(2, "ben@acme.test", enabled=False)),
        mail_aliases=(
            MailAliasView(3, 1, ACCOUNT, "@acme.test", ("ben@acme.test",), False),
            MailAliasView(4, 1, ACCOUNT, "team@acme.test", ("ann@acme.test", "x@y.org"), False),
        ),
    )
    assert files["mail/postfix/domains"] == "acme.test OK\n"
    assert files["mail/postfix/mailboxes"] == "ann@acme.test OK\nben@acme.test OK\n"
    aliases = files["mail/postfix/aliases"].splitlines()
    # The catch-all cannot swallow a mailbox: each mailbox maps to itself.
    assert "ann@acme.test ann@acme.test" in aliases
    assert "@acme.test ben@acme.test" in aliases
    assert "team@acme.test ann@acme.test,x@y.org" in aliases
    users = files["mail/dovecot/users"].splitlines()
    assert users[0].startswith("ann@acme.test:{ARGON2ID}$argon2id$")
    assert users[0].endswith(":userdb_quota_rule=*:storage=100M")
    assert users[1].endswith(" nologin=y")


def test_a_deleting_mailbox_leaves_every_map() -> None:
    files = _files(mailboxes=(_box(1, "ann@acme.test", deleting=True),))
    assert "ann@" not in "".join(files.values())


@pytest.mark.parametrize(
    "address",
    [
        "evil@acme.test OK\nroot@acme.test",  # a second map line
        "evil@acme.test:{PLAIN}x::::::",  # a second passwd-file field
        "evil @acme.test",
        "Evil@acme.test",
        "evil@acme.test,root@localhost",
    ],
)
def test_a_crafted_address_that_slipped_past_the_api_cannot_add_an_entry(address: str) -> None:
    with pytest.raises(ValueError, match="refusing"):
        _files(mailboxes=(_box(1, address),))
    alias = MailAliasView(1, 1, ACCOUNT, "a@acme.test", (address,), False)
    with pytest.raises(ValueError, match="refusing"):
        _files(mail_aliases=(alias,))


def test_a_crafted_hash_cannot_add_a_field_or_a_line() -> None:
    for bad in (HASH + "\nroot@acme.test:{PLAIN}x", HASH + ":0:0", "{PLAIN}secret password"):
        with pytest.raises(ValueError, match="refusing"):
            _files(mailboxes=(dataclasses.replace(_box(1, "ann@acme.test"), password_hash=bad),))
