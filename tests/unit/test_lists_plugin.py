"""Pure tests of the Mailman plugin's decisions and the tunnel's HTTP parsing."""

from __future__ import annotations

import pytest

from provisioners.api import AccountView, DesiredState, Facts, HostView, MailingListView
from provisioners.lists import MAILMAN_STATE, Mailman, mailman_config, postfix_settings
from provisioners.transport import TransportError, _parse_http


def _list(**extra: object) -> MailingListView:
    values: dict[str, object] = {
        "id": 1,
        "version": 1,
        "account": AccountView(1, "acme", "active"),
        "address": "news@lists.acme.test",
        "owners": ("boss@acme.test",),
        "policy": "moderate",
        "settings": {},
        "members": (),
        "deleting": False,
        **extra,
    }
    return MailingListView(**values)  # type: ignore[arg-type]


def _state(relay: str | None = None) -> DesiredState:
    settings = {"relay_host": relay} if relay else {}
    return DesiredState(host=HostView(1, "lists1", ("lists",), settings), lists=(_list(),))


def _facts(postconf: dict[str, str], groups: str = "postfix list", maps: str = "") -> Facts:
    maps = maps or "postfix_lmtp\npostfix_domains"
    lines = ["-- postconf", *(f"{k} = {v}".rstrip() for k, v in postconf.items())]
    lines += ["-- groups", groups, "-- maps", maps, "-- applied"]
    return Facts.of({MAILMAN_STATE: "\n".join(lines)})


def test_policies_and_settings_map_to_mailman_names() -> None:
    config = mailman_config(
        _list(settings={"reply_to": "list", "subject_prefix": "[n] ", "archive_policy": None})
    )
    assert config == {
        "subscription_policy": "confirm_then_moderate",
        "reply_goes_to_list": "point_to_list",
        "subject_prefix": "[n] ",
    }
    assert mailman_config(_list(policy="open")) == {"subscription_policy": "open"}


def test_postfix_steps_only_when_the_host_differs() -> None:
    plugin = Mailman()
    done = postfix_settings("10.0.0.9")
    assert plugin.steps(_state("10.0.0.9"), _facts(done), set()) == []
    steps = plugin.steps(_state("10.0.0.9"), _facts(postfix_settings(None)), set())
    assert [s.argv for s in steps] == [
        ("postconf", "-e", "relayhost=[10.0.0.9]:25"),
        ("systemctl", "reload-or-restart", "postfix"),
    ]
    fresh = plugin.steps(_state(), _facts({}, groups="postfix", maps="postfix_lmtp"), set())
    assert [s.argv[0] for s in fresh] == ["usermod", "runuser", "postconf", "systemctl"]
    assert "relayhost=" in fresh[2].argv


@pytest.mark.parametrize(
    ("raw", "status", "body"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 200, b"{}"),
        (b"HTTP/1.1 204 No Content\r\n\r\n", 204, b""),
        (
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            200,
            b"abcde",
        ),
    ],
)
def test_http_responses_parse(raw: bytes, status: int, body: bytes) -> None:
    response = _parse_http(raw, "test")
    assert (response.status, response.body) == (status, body)


@pytest.mark.parametrize(
    "raw", [b"", b"SSH-2.0-OpenSSH\r\n", b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}"]
)
def test_broken_http_is_an_error(raw: bytes) -> None:
    with pytest.raises(TransportError):
        _parse_http(raw, "test")
