"""Data between hosts, through the panel: a command's stdout on host A becomes a command's
stdin on host B, chunk by chunk, over the panel's two SSH connections.  Hosts never hold
keys for each other, and nothing is spooled on the panel (memory holds one chunk).
"""

from __future__ import annotations

import hashlib
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass

import paramiko

from provisioners.transport import Connection, HttpResponse, TransportError, _parse_http

CHUNK = 1 << 16
STREAM_TIMEOUT = 6 * 3600.0  # one copy of a big site; a stalled read fails sooner (below)
IDLE_TIMEOUT = 600.0


@dataclass(frozen=True)
class Copied:
    bytes: int
    sha256: str
    seconds: float


def _drain_stderr(chan: paramiko.Channel, into: bytearray) -> None:
    while chan.recv_stderr_ready():
        into += chan.recv_stderr(CHUNK)
    del into[:-8000]  # keep the tail: that is where the reason is


def _drain_both(chan: paramiko.Channel, out: bytearray, err: bytearray) -> None:
    while chan.recv_ready():
        out += chan.recv(CHUNK)
        del out[:-8000]
    _drain_stderr(chan, err)


def _finish(
    s: paramiko.Channel,
    d: paramiko.Channel,
    close_input: bool,
    s_err: bytearray,
    d_out: bytearray,
    d_err: bytearray,
) -> tuple[int, int]:
    """The source ended: its exit code, then the receiver's once it has read everything."""
    s_code = s.recv_exit_status()
    _drain_stderr(s, s_err)
    if close_input:
        d.shutdown_write()
    while True:
        out = d.recv(CHUNK)
        if not out:
            break
        d_out += out
        del d_out[:-8000]
    d_code = d.recv_exit_status()
    while d.recv_stderr_ready():
        d_err += d.recv_stderr(CHUNK)
    return s_code, d_code


def pipe(
    src: Connection,
    src_argv: Sequence[str],
    dst: Connection,
    dst_argv: Sequence[str],
    what: str,
) -> Copied:
    """Run ``src_argv`` on one host and ``dst_argv`` on another, the first's stdout fed to
    the second's stdin.  Either failing (non-zero exit) raises with its stderr's tail."""
    started = time.monotonic()
    digest = hashlib.sha256()
    count = 0
    s_err, d_err, d_out = bytearray(), bytearray(), bytearray()
    s = src.channel(src_argv, IDLE_TIMEOUT)
    try:
        d = dst.channel(dst_argv, IDLE_TIMEOUT)
    except BaseException:
        s.close()
        raise
    broken: str | None = None
    try:
        try:
            while True:
                chunk = s.recv(CHUNK)
                _drain_stderr(s, s_err)
                if not chunk:
                    break
                digest.update(chunk)
                count += len(chunk)
                if broken is None:
                    try:
                        d.sendall(chunk)
                    except OSError as exc:  # the receiver is gone: read its reason below
                        broken = str(exc)
                _drain_both(d, d_out, d_err)
                if time.monotonic() - started > STREAM_TIMEOUT:
                    raise TransportError(f"{what}: still copying after {STREAM_TIMEOUT:.0f}s")
            s_code, d_code = _finish(s, d, broken is None, s_err, d_out, d_err)
        except (TimeoutError, socket.timeout) as exc:  # noqa: UP041 - paramiko raises either
            raise TransportError(f"{what}: no progress for {IDLE_TIMEOUT:.0f}s") from exc
        except (paramiko.SSHException, EOFError) as exc:
            raise TransportError(f"{what}: connection lost ({exc!r})") from exc
    finally:
        s.close()
        d.close()
    if s_code != 0:
        reason = bytes(s_err).decode("utf-8", "replace").strip()[-1000:]
        raise TransportError(f"{what}: {src.target.name} exited {s_code}: {reason}")
    if d_code != 0 or broken is not None:
        reason = bytes(d_err or d_out).decode("utf-8", "replace").strip()[-1000:]
        raise TransportError(f"{what}: {dst.target.name} exited {d_code}: {reason or broken}")
    return Copied(count, digest.hexdigest(), time.monotonic() - started)


def probe(conn: Connection, name: str, path: str = "/", port: int = 80) -> HttpResponse:
    """GET ``path`` of the vhost ``name`` from the host itself (127.0.0.1 through the SSH
    connection): proves the host serves the site whatever the DNS and firewalls say."""
    chan = conn.tunnel(port)
    request = (
        f"GET {path} HTTP/1.1\r\nHost: {name}\r\nUser-Agent: konbit-verify\r\n"
        "Connection: close\r\n\r\n"
    ).encode("ascii")
    raw = bytearray()
    try:
        chan.settimeout(30)
        chan.sendall(request)
        while chunk := chan.recv(CHUNK):
            raw += chunk
    except (TimeoutError, socket.timeout) as exc:  # noqa: UP041
        raise TransportError(f"{conn.target.name}: GET {name}{path} timed out") from exc
    except (paramiko.SSHException, OSError, EOFError) as exc:
        raise TransportError(f"{conn.target.name}: connection lost ({exc!r})") from exc
    finally:
        chan.close()
    return _parse_http(bytes(raw), f"{conn.target.name}: GET {name}{path}")
