"""The mail bench's state and host: N mailboxes over N/20 domains built directly, a fresh mail
test host, the engine's apply timed with its SSH execs by kind, and the checker's and the
reloads' pieces timed alone on the host."""

from __future__ import annotations

import dataclasses
import time
from collections import defaultdict
from collections.abc import Sequence
from typing import Any

import paramiko
from common import Measure

from panel.mail.service import hash_mail_password
from panel.testhosts import Lab, TestHost
from provisioners import engine as engine_mod
from provisioners.api import AccountView, DesiredState, HostView, MailAliasView, MailboxView
from provisioners.engine import HostEngine
from provisioners.transport import Connection, Target

HOST_NAME = "mail1"


PASSWORD = "correct horse battery"


BOXES_PER_DOMAIN = 20


@dataclasses.dataclass
class Row:
    case: str
    n: int | str
    seconds: float
    execs: int | str
    target: str
    verdict: str
    note: str = ""


# -- the desired state --------------------------------------------------------------------


def build_state(n: int, tag: str, password_hash: str, extra: int = 0) -> DesiredState:
    """N (+ extra) mailboxes over N/20 domains, one account per domain; per domain an alias
    to two of its mailboxes and a catch-all to one.  Mailbox ``i`` lives in domain
    ``i % domains``, so the extra ones land among the others, not at the end."""
    domains = max(1, n // BOXES_PER_DOMAIN)
    accounts = tuple(AccountView(d + 1, f"{tag}a{d + 1}", "active") for d in range(domains))

    def domain(d: int) -> str:
        return f"d{d + 1}.{tag}.test"

    boxes = tuple(
        MailboxView(
            id=i + 1,
            version=1,
            account=accounts[i % domains],
            address=f"u{i + 1}@{domain(i % domains)}",
            password_hash=password_hash,
            quota_mb=1024,
            enabled=True,
            deleting=False,
        )
        for i in range(n + extra)
    )
    aliases: list[MailAliasView] = []
    for d in range(domains):
        first = [b.address for b in boxes[d : d + 2 * domains : domains]]
        aliases.append(
            MailAliasView(2 * d + 1, 1, accounts[d], f"team@{domain(d)}", tuple(first), False)
        )
        aliases.append(
            MailAliasView(2 * d + 2, 1, accounts[d], f"@{domain(d)}", tuple(first[:1]), False)
        )
    host = HostView(1, HOST_NAME, ("mail",), {})
    return DesiredState(host=host, accounts=accounts, mailboxes=boxes, mail_aliases=tuple(aliases))


def time_hashing(count: int) -> float:
    """Seconds per ``hash_mail_password`` (argon2id, 64 MiB, t=3), as the API pays it."""
    started = time.perf_counter()
    for _ in range(count):
        hash_mail_password(PASSWORD)
    return (time.perf_counter() - started) / count


# -- the host -----------------------------------------------------------------------------


def fresh_host(lab: Lab, panel_pub: str) -> TestHost:
    """A new mail host (fresh overlay: no konbit tree, stock postfix and dovecot)."""
    old = lab.hosts.get(HOST_NAME)
    if old is not None:
        old.stop()
    host = lab.start(HOST_NAME, roles=["mail"], authorized_keys=[panel_pub])
    host.wait_ready(60)
    return host


def target_of(host: TestHost, key: paramiko.PKey) -> Target:
    """The host as the engine reaches it, after one untimed SSH exec: a host that has
    just booted takes up to ~0.3 s more for its first connection (not the engine's)."""
    target = Target(HOST_NAME, host.address, 22, "root", host.host_key)
    with Connection(target, key) as conn:
        conn.run(["true"], check=True)
    return target


# Each piece of what the engine's "validate" and "reload" phases run, one at a time, on
# copies of the live maps (postmap writes next to its input).
_DETAIL = r"""
set -eu
ms() { date +%s%N; }
run() { what="$1"; shift; s=$(ms); "$@" >/dev/null 2>&1 || echo "$what FAILED"; \
        echo "$what $(( ($(ms) - s) / 1000000 ))"; }
d="$(mktemp -d)"
cp /etc/konbit/live/mail/postfix/domains /etc/konbit/live/mail/postfix/mailboxes \
   /etc/konbit/live/mail/postfix/aliases "$d"/
for m in domains mailboxes aliases; do run "postmap-$m" postmap "hash:$d/$m"; done
rm -rf "$d"
run "postfix-check" postfix check
run "doveconf" doveconf -n -c /etc/konbit/live/mail/dovecot.conf
run "reload-postfix" systemctl reload-or-restart postfix
run "reload-dovecot" systemctl reload-or-restart dovecot
run "unshare-true" unshare -m true
wc -c /etc/konbit/live/mail/postfix/mailboxes /etc/konbit/live/mail/postfix/aliases \
      /etc/konbit/live/mail/dovecot/users | sed -n 's/^ *\([0-9]*\) .*\/\(.*\)$/bytes-\2 \1/p'
"""


def host_detail(host: TestHost) -> dict[str, float]:
    """Milliseconds per checker / reload command on the host (bytes for the file sizes)."""
    out = host.exec(["sh", "-c", _DETAIL], timeout=300)
    if out.returncode != 0:
        raise RuntimeError(f"detail failed: {out.stderr[-1000:]}")
    detail: dict[str, float] = {}
    for line in out.stdout.splitlines():
        what, _, value = line.rpartition(" ")
        if value.isdigit():
            detail[what] = float(value)
        else:
            print(f"  detail: {line}", flush=True)
    return detail


# -- engine -------------------------------------------------------------------------------


def _named(script: str) -> str | None:
    """The engine script an ``sh -c`` exec runs (getattr: they are private)."""
    for attr, kind in (
        ("_STAGE", "stage"),
        ("_SWAP", "swap"),
        ("_PRUNE", "prune"),
        ("_INIT_TREE", "bootstrap"),
        ("_WRITE", "bootstrap"),
    ):
        if script == getattr(engine_mod, attr, None):
            return kind
    if script.startswith(getattr(engine_mod, "_FACTS", "\0")):
        return "facts"
    return None


def classify(argv: Sequence[str], swapped: bool) -> str:
    """The phase an exec belongs to, from its argv."""
    if argv[:2] == ["sh", "-c"]:
        return _named(argv[2]) or "other"
    if argv[:2] == ["sh", "-s"]:  # the batched steps of one phase, on stdin
        return "steps>" if swapped else "steps<"
    if argv[0] == "unshare":
        return "validate"
    if argv[0] == "systemctl":
        return f"reload-{argv[-1]}"
    if argv[:2] == ["tar", "-c"]:
        return "read-old"
    return "other"


def engine_apply(
    target: Target, key: paramiko.PKey, engine: HostEngine, state: DesiredState, label: str
) -> Measure:
    """One reconcile as the panel runs it: a new connection, then ``apply``.

    The engine runs some execs at once (the before steps beside the upload): phases may
    overlap, so "local" is the wall time when no exec was running (nor the connect)."""
    phases: dict[str, float] = defaultdict(float)
    spans: list[tuple[float, float]] = []
    started = time.perf_counter()
    with Connection(target, key) as conn:
        spans.append((started, time.perf_counter()))
        phases["connect"] = spans[0][1] - started
        original = conn.run
        swapped = False

        def run(argv: Sequence[str], **kw: Any) -> Any:
            nonlocal swapped
            kind = classify(list(argv), swapped)
            swapped = swapped or kind == "swap"
            t = time.perf_counter()
            try:
                return original(argv, **kw)
            finally:
                end = time.perf_counter()
                phases[kind] += end - t
                spans.append((t, end))

        conn.run = run  # type: ignore[method-assign]
        try:
            outcome = engine.apply(conn, state, label)
        except Exception as exc:  # the engine let something escape: report it, go on
            seconds = time.perf_counter() - started
            return Measure(seconds, conn.commands, dict(phases), "error", repr(exc)[:300])
        execs = conn.commands
    seconds = time.perf_counter() - started
    phases["local"] = seconds - covered(spans)
    error = f"{outcome.phase}: {(outcome.error or '')[-400:]}" if outcome.result == "failed" else ""
    return Measure(seconds, execs, dict(phases), outcome.result, error)


def covered(spans: list[tuple[float, float]]) -> float:
    """Length of the union of time intervals."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def render_seconds(engine: HostEngine, state: DesiredState) -> float:
    """Python render of every file, alone (part of "local")."""
    started = time.perf_counter()
    for plugin in engine.for_state(state):
        plugin.render(state)
    return time.perf_counter() - started
