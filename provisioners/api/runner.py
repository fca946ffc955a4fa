"""What a plugin and the engine need of a connection to a host: run argv, run a fixed
script, talk HTTP to a loopback service.  The paramiko ``Connection`` implements it over
SSH; ``provisioners.testing.FakeRunner`` implements it in memory for tests."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class TransportError(Exception):
    """The host could not be reached or spoken to; the reconcile is retried later."""


class HostKeyMismatch(TransportError):
    """The host presented a key other than the pinned one: never connect anyway."""


class TunnelRefused(TransportError):
    """sshd could not reach the port on the host (the service is down or still starting)."""


@dataclass(frozen=True)
class Result:
    argv: tuple[str, ...]
    exit_code: int
    stdout: bytes
    stderr: bytes
    seconds: float

    @property
    def ok(self) -> bool:
        return self.exit_code == 0

    def text(self) -> str:
        return self.stdout.decode("utf-8", "replace")

    def error_text(self, limit: int = 4000) -> str:
        return self.stderr.decode("utf-8", "replace")[-limit:]


@dataclass(frozen=True)
class HttpResponse:
    status: int
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    def text(self, limit: int = 500) -> str:
        return self.body[:limit].decode("utf-8", "replace")


class Runner(Protocol):
    """One host, reached by whatever means; every value travels as argv or stdin."""

    @property
    def name(self) -> str:
        """The host's name, for messages."""
        ...

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result: ...

    def script(
        self, script: str, *args: str, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        """A fixed shell script; ``args`` reach it as "$1", "$2"... never as code."""
        ...

    def http(
        self,
        port: int,
        method: str,
        path: str,
        *,
        headers: dict[str, str] | None = None,
        body: bytes = b"",
        timeout: float | None = None,
    ) -> HttpResponse:
        """One HTTP request to a service on the host's own loopback."""
        ...
