"""SSH transport: moves bytes and runs argv on one host, over one pinned connection.

It knows nothing of sites or mailboxes.  Commands are argv lists joined with ``shlex``;
scripts get their values as positional parameters (``"$1"``), never by interpolation;
secrets travel on stdin.  The host key is pinned: an unknown or changed key is an error
naming the fingerprint the host presented.
"""

from __future__ import annotations

import base64
import hashlib
import select
import shlex
import socket
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

import paramiko

from provisioners.api.runner import HostKeyMismatch as HostKeyMismatch

# Re-exported: callers of the transport get its results from one place.
from provisioners.api.runner import HttpResponse as HttpResponse
from provisioners.api.runner import Result as Result
from provisioners.api.runner import TransportError as TransportError
from provisioners.api.runner import TunnelRefused as TunnelRefused

CONNECT_TIMEOUT = 10.0
COMMAND_TIMEOUT = 300.0


@dataclass(frozen=True)
class Target:
    """Where and how to reach a host (filled from the panel's Host row)."""

    name: str
    address: str
    port: int
    user: str
    host_key: str  # "ssh-ed25519 AAAA..."


def fingerprint(key: paramiko.PKey) -> str:
    digest = base64.b64encode(hashlib.sha256(key.asbytes()).digest()).decode().rstrip("=")
    return f"SHA256:{digest}"


def load_client_key(path: Path) -> paramiko.PKey:
    return paramiko.Ed25519Key.from_private_key_file(str(path))


def _pinned_key(line: str) -> paramiko.PKey:
    kind, data = line.split()[:2]
    return paramiko.PKey.from_type_string(kind, base64.b64decode(data))


@dataclass
class Connection:
    """One SSH connection to one host (a ``provisioners.api.Runner``); use as a context
    manager so it always closes."""

    target: Target
    client_key: paramiko.PKey
    timeout: float = COMMAND_TIMEOUT
    _client: paramiko.SSHClient | None = field(default=None, init=False)
    commands: int = field(default=0, init=False)
    # Two channels can run at once (steps beside the upload): count under a lock.
    _counting: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __enter__(self) -> Self:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def name(self) -> str:
        return self.target.name

    @property
    def sudo(self) -> bool:
        return self.target.user != "root"

    def open(self) -> None:
        t = self.target
        pinned = _pinned_key(t.host_key)
        client = paramiko.SSHClient()
        entry = t.address if t.port == 22 else f"[{t.address}]:{t.port}"
        client.get_host_keys().add(entry, pinned.get_name(), pinned)
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            sock = socket.create_connection((t.address, t.port), timeout=CONNECT_TIMEOUT)
            # paramiko leaves Nagle on: every small request would stall 40 ms.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            client.connect(
                t.address,
                port=t.port,
                username=t.user,
                pkey=self.client_key,
                sock=sock,
                timeout=CONNECT_TIMEOUT,
                banner_timeout=CONNECT_TIMEOUT,
                auth_timeout=CONNECT_TIMEOUT,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.BadHostKeyException as exc:
            client.close()
            raise HostKeyMismatch(
                f"{t.name} ({t.address}) presented host key {fingerprint(exc.key)}, but "
                f"{fingerprint(pinned)} is pinned; if the host was reinstalled, update its "
                "host key in the panel after checking it on the console"
            ) from None
        except paramiko.SSHException as exc:
            client.close()
            raise TransportError(f"SSH to {t.name} ({t.address}:{t.port}) failed: {exc}") from None
        except OSError as exc:
            client.close()
            raise TransportError(
                f"cannot reach {t.name} ({t.address}:{t.port}): {exc}; is it up?"
            ) from None
        self._client = client

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    def run(
        self,
        argv: Sequence[str],
        *,
        stdin: bytes | None = None,
        timeout: float | None = None,
        check: bool = False,
    ) -> Result:
        """Run argv (joined with shlex, so every value is quoted); root via ``sudo -n``."""
        full = (["sudo", "-n", "--"] if self.sudo else []) + list(argv)
        command = shlex.join(full)
        started = time.monotonic()
        transport = self._transport()
        try:
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
            chan.settimeout(timeout or self.timeout)
            chan.exec_command(command)
            if stdin:
                chan.sendall(stdin)
            chan.shutdown_write()
            out, err = _drain(chan, timeout or self.timeout)
            code = chan.recv_exit_status()
            chan.close()
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 - paramiko raises either
            raise TransportError(
                f"{self.target.name}: {full[0]} timed out after {timeout or self.timeout}s"
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # paramiko raises EOFError when the server drops the connection.
            raise TransportError(f"{self.target.name}: connection lost ({exc!r})") from exc
        with self._counting:
            self.commands += 1
        result = Result(tuple(full), code, out, err, time.monotonic() - started)
        if check and not result.ok:
            raise TransportError(
                f"{self.target.name}: {full[0]} exited {code}: {result.error_text(500)}"
            )
        return result

    def channel(self, argv: Sequence[str], timeout: float | None = None) -> paramiko.Channel:
        """Start argv (root via ``sudo -n``) and hand back its channel, for a caller that
        streams more than fits in memory (panel.tasks.streams pipes one host into another)."""
        transport = self._transport()
        full = (["sudo", "-n", "--"] if self.sudo else []) + list(argv)
        try:
            chan = transport.open_session(timeout=CONNECT_TIMEOUT)
            chan.settimeout(timeout or self.timeout)
            chan.exec_command(shlex.join(full))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.target.name}: connection lost ({exc!r})") from exc
        with self._counting:
            self.commands += 1
        return chan

    def _transport(self) -> paramiko.Transport:
        if self._client is None:
            raise TransportError("connection is not open")
        transport = self._client.get_transport()
        if transport is None or not transport.is_active():
            raise TransportError(f"connection to {self.target.name} was lost")
        return transport

    def tunnel(self, port: int) -> paramiko.Channel:
        """A ``direct-tcpip`` channel to 127.0.0.1:``port`` on the host (raw bytes)."""
        transport = self._transport()
        try:
            return transport.open_channel(
                "direct-tcpip", ("127.0.0.1", port), ("127.0.0.1", 0), timeout=CONNECT_TIMEOUT
            )
        except paramiko.ChannelException as exc:
            raise TunnelRefused(
                f"{self.target.name}: nothing answers on 127.0.0.1:{port} ({exc.text})"
            ) from None
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.target.name}: connection lost ({exc!r})") from exc

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
        """One HTTP/1.1 request to a service on the host's own loopback, through a
        ``direct-tcpip`` channel of this connection: a local-only API (Mailman's REST) is
        driven without ever listening on the network.  Header values are the caller's;
        they never reach a log from here."""
        wait = timeout or self.timeout
        chan = self.tunnel(port)
        lines = [
            f"{method} {path} HTTP/1.1",
            f"Host: 127.0.0.1:{port}",
            "Connection: close",
            f"Content-Length: {len(body)}",
            *(f"{k}: {v}" for k, v in (headers or {}).items()),
        ]
        try:
            chan.settimeout(wait)
            chan.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
            raw = bytearray()
            while chunk := chan.recv(65536):
                raw += chunk
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 - paramiko raises either
            raise TransportError(
                f"{self.target.name}: {method} {path} timed out after {wait}s"
            ) from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            raise TransportError(f"{self.target.name}: connection lost ({exc!r})") from exc
        finally:
            chan.close()
        with self._counting:
            self.commands += 1
        return _parse_http(bytes(raw), f"{self.target.name}: {method} {path}")

    def script(
        self, script: str, *args: str, stdin: bytes | None = None, timeout: float | None = None
    ) -> Result:
        """Run a fixed shell script; ``args`` reach it as "$1", "$2"... never as code."""
        return self.run(["sh", "-c", script, "konbit", *args], stdin=stdin, timeout=timeout)


def _parse_http(raw: bytes, what: str) -> HttpResponse:
    """A whole ``Connection: close`` response: status, headers, body (chunked or not)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    parts = status_line.split(" ", 2)
    if not sep or len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise TransportError(f"{what}: not an HTTP response ({raw[:80]!r})")
    headers: dict[str, str] = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = _dechunk(body, what)
    elif (length := headers.get("content-length", "")).isdigit():
        if len(body) < int(length):
            raise TransportError(f"{what}: response cut short")
        body = body[: int(length)]
    return HttpResponse(int(parts[1]), headers, body)


def _dechunk(data: bytes, what: str) -> bytes:
    out = bytearray()
    while True:
        size_line, sep, rest = data.partition(b"\r\n")
        try:
            size = int(size_line.split(b";")[0], 16)
        except ValueError:
            raise TransportError(f"{what}: bad chunked encoding") from None
        if not sep or size == 0:
            return bytes(out)
        out += rest[:size]
        data = rest[size + 2 :]


def _drain(chan: paramiko.Channel, timeout: float) -> tuple[bytes, bytes]:
    """Read stdout and stderr as they come (neither may fill the window and stall the other)."""
    out = bytearray()
    err = bytearray()
    deadline = time.monotonic() + timeout
    while True:
        got = False
        while chan.recv_ready():
            out += chan.recv(65536)
            got = True
        while chan.recv_stderr_ready():
            err += chan.recv_stderr(65536)
            got = True
        idle = not chan.recv_ready() and not chan.recv_stderr_ready()
        if chan.exit_status_ready() and idle and (chan.eof_received or chan.closed):
            return bytes(out), bytes(err)
        if time.monotonic() > deadline:
            raise TimeoutError
        if not got:
            select.select([chan], [], [], 0.005)
