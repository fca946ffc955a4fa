"""DKIM on mail hosts, without a host: OpenDKIM's tables and configuration as rendered
from the desired state, the postfix and opendkim steps read from facts, the key commands
a task runs, and the panel's checks of what a host sends back."""

from __future__ import annotations

import base64
import datetime as dt

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from panel.dns.dkim import check_public_key, new_selector, record_data, record_name
from provisioners.api import (
    AccountView,
    DesiredState,
    DkimKeys,
    DkimKeyView,
    Facts,
    HostView,
    MailAliasView,
    offered,
)
from provisioners.mail import (
    MILTER,
    POSTCONF,
    POSTFIX_PARAMS,
    SUBMISSION,
    SUBMISSION_PARAMS,
    Mail,
    MailOperations,
)
from tests.unit.test_mail_render import _box

ACCOUNT = AccountView(1, "acme", "active")


def _files(**parts: object) -> dict[str, str]:
    state = DesiredState(host=HostView(1, "mail1", ("mail",), {}), **parts)  # type: ignore[arg-type]
    return {f.path: f.content.decode() for f in Mail().render(state)}


def test_each_mail_domain_is_signed_with_its_zones_key() -> None:
    files = _files(
        mailboxes=(_box(1, "ann@acme.test"), _box(2, "news@lists.acme.test")),
        mail_aliases=(
            MailAliasView(3, 1, ACCOUNT, "@beta.test", ("ann@acme.test",), False),
            MailAliasView(4, 1, ACCOUNT, "x@nokey.test", ("ann@acme.test",), False),
        ),
        dkim_keys=(DkimKeyView("acme.test", "k20261208"), DkimKeyView("beta.test", "k2")),
    )
    assert files["mail/opendkim/keys"] == (
        "acme.test acme.test:k20261208:/var/lib/konbit/dkim/acme.test/k20261208.private\n"
        "beta.test beta.test:k2:/var/lib/konbit/dkim/beta.test/k2.private\n"
    )
    # A subdomain's mail is signed with its zone's key; a domain without one is not signed.
    assert files["mail/opendkim/signing"] == (
        "*@acme.test acme.test\n*@beta.test beta.test\n*@lists.acme.test acme.test\n"
    )
    conf = files["mail/opendkim/opendkim.conf"]
    assert "Mode                    s\n" in conf
    assert "Socket                  inet:8891@127.0.0.1\n" in conf
    assert "SigningTable            refile:/etc/konbit/live/mail/opendkim/signing\n" in conf
    assert "KeyTable                /etc/konbit/live/mail/opendkim/keys\n" in conf
    assert files["mail/opendkim/internal-hosts"] == "127.0.0.1\n::1\n"


def test_a_host_without_keys_signs_nothing_and_a_deleting_domain_is_dropped() -> None:
    files = _files(mailboxes=(_box(1, "ann@acme.test", deleting=True),),
                   dkim_keys=(DkimKeyView("acme.test", "k1"),))  # fmt: skip
    assert files["mail/opendkim/signing"] == ""
    assert _files()["mail/opendkim/keys"] == ""


@pytest.mark.parametrize(
    "key",
    [
        DkimKeyView("acme.test", "k1 x"),
        DkimKeyView("acme.test", "k1:/etc/shadow"),
        DkimKeyView("acme.test\nevil.test", "k1"),
        DkimKeyView("../../etc", "k1"),
        DkimKeyView("acme.test", "K1"),
    ],
)
def test_a_crafted_key_cannot_add_an_entry_or_point_elsewhere(key: DkimKeyView) -> None:
    with pytest.raises(ValueError, match="refusing"):
        _files(dkim_keys=(key,))
    with pytest.raises(ValueError, match="refusing"):
        MailOperations().new_key(key.domain, key.selector)


def test_key_commands_pass_names_as_arguments_never_as_code() -> None:
    ops = offered([Mail()], DkimKeys)
    made = ops.new_key("acme.test", "k20261208")
    assert made.argv[:2] == ("sh", "-c")
    assert made.argv[3:] == ("konbit", "acme.test", "k20261208", "2048")
    assert "acme.test" not in made.argv[2] and "opendkim-genkey" in made.argv[2]
    gone = ops.remove_key("acme.test", "k20261208")
    assert gone.argv[3:] == ("konbit", "acme.test", "k20261208")


def _facts(text: str) -> Facts:
    return Facts.of({POSTCONF: text}, users={"vmail": 5000})


RIGHT = "\n".join(
    [
        *(f"{k} = {v}" for k, v in POSTFIX_PARAMS.items()),
        "dovecot = konbit",
        "opendkim = konbit",
        # As postconf -M prints it: its columns, then the -o options.
        "master.submission = submission inet  n       -       y       -       -       smtpd"
        + "".join(f" -o {k}={v}" for k, v in SUBMISSION_PARAMS.items()),
        *(f"submission/inet/{k} = {v}" for k, v in SUBMISSION_PARAMS.items()),
    ]
)


def test_a_host_set_up_right_needs_no_step() -> None:
    state = DesiredState(host=HostView(1, "mail1", ("mail",), {}))
    assert Mail().steps(state, _facts(RIGHT), set()) == []


def test_a_fresh_host_gets_milters_submission_and_the_opendkim_link() -> None:
    state = DesiredState(host=HostView(1, "mail1", ("mail",), {}))
    fresh = "smtpd_milters =\nnon_smtpd_milters =\nmaster.submission = \n"
    steps = {s.description: s for s in Mail().steps(state, _facts(fresh), set())}
    postconf = next(s for d, s in steps.items() if d.startswith("postfix main.cf"))
    assert f"smtpd_milters={MILTER}" in postconf.argv
    assert "milter_default_action=accept" in postconf.argv
    submission = steps["postfix master.cf: the submission service"]
    assert submission.argv[4] == SUBMISSION
    # Setting the service's line drops its options: every one is given again.
    assert len(submission.argv[5:]) == len(SUBMISSION_PARAMS)
    assert "submission/inet/smtpd_sasl_auth_enable=yes" in submission.argv
    link = steps["/etc/opendkim.conf is the konbit configuration"]
    assert link.phase == "after"
    assert link.argv[-1] == "/etc/konbit/live/mail/opendkim/opendkim.conf"
    # One option changed by hand: the service is set again, whole.
    drifted = RIGHT.replace("submission/inet/smtpd_tls_auth_only = yes",
                            "submission/inet/smtpd_tls_auth_only = no")  # fmt: skip
    assert [s.description for s in Mail().steps(state, _facts(drifted), set())] == [
        "postfix master.cf: the submission service"
    ]


def test_opendkim_is_reloaded_when_its_files_change() -> None:
    state = DesiredState(host=HostView(1, "mail1", ("mail",), {}))
    assert ["systemctl", "reload-or-restart", "opendkim"] in Mail().reload(
        state, {"mail/opendkim/keys"}
    )
    assert Mail().reload(state, {"mail/dovecot/users"}) == [
        ["systemctl", "reload-or-restart", "dovecot"]
    ]


# -- the panel's side ----------------------------------------------------------------------


def _public(key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey) -> str:
    der = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return base64.b64encode(der).decode()


def test_only_an_rsa_key_of_2048_bits_or_more_is_taken_from_a_host() -> None:
    good = _public(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert check_public_key(good + "\n") == good
    for bad in (
        _public(rsa.generate_private_key(public_exponent=65537, key_size=1024)),
        _public(ec.generate_private_key(ec.SECP256R1())),
        good[:-8],
        good + '"; evil',
        "",
    ):
        with pytest.raises(ValueError):
            check_public_key(bad)


def test_the_record_splits_into_strings_of_255() -> None:
    good = _public(rsa.generate_private_key(public_exponent=65537, key_size=2048))
    data = record_data(good)
    strings = data[1:-1].split('" "')
    assert all(len(s) <= 255 for s in strings) and len(strings) == 2
    assert "".join(strings) == f"v=DKIM1; k=rsa; p={good}"
    assert record_name("k20261208") == "k20261208._domainkey"


def test_selectors_are_the_date_then_a_letter() -> None:
    day = dt.datetime(2026, 12, 8, 23, 59, tzinfo=dt.UTC)
    assert new_selector([], day) == "k20261208"
    assert new_selector(["k20261208"], day) == "k20261208b"
    assert new_selector(["k20261208", "k20261208b"], day) == "k20261208c"
    assert new_selector(["k20261207"], day) == "k20261208"
