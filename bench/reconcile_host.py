"""The reconcile bench's host and engine: the nginx test host's shell, reloads and reset, N
static sites' desired state, the engine's apply timed with its SSH execs by kind, and the
floor (the same rendered files through tar over OpenSSH, nginx -t, reload)."""

from __future__ import annotations

import contextlib
import dataclasses
import subprocess
import time
from collections import defaultdict
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from common import Measure

from panel.testhosts import TestHost
from provisioners import engine as engine_mod
from provisioners import web as web_mod
from provisioners.api import AccountView, DesiredState, HostView, SiteView
from provisioners.engine import HostEngine
from provisioners.transport import Connection, Target

HOST_NAME = "bench1"


# One writable layer for the whole host (overlay upper dir): /tmp is on the same file
# system as /etc/konbit, so the floor extracts where the engine stages, at the same cost.
FLOOR_DIR = "/tmp/floor"


FLOOR_INCLUDE = "/etc/nginx/conf.d/zz-konbit-floor.conf"


NOFILE = 262_144


# Between sizes: no konbit tree, no floor, no bench users, nothing of ours in nginx/php.
_RESET = r"""
set -u
rm -f /etc/nginx/conf.d/konbit.conf /etc/nginx/conf.d/zz-konbit-floor.conf \
      /etc/php/*/fpm/pool.d/zz-konbit.conf /etc/nginx/modules-enabled/zz-konbit.conf \
      /etc/systemd/system/nginx.service.d/konbit.conf
rm -rf /etc/konbit /tmp/floor /var/www/konbit /var/log/konbit /var/lib/konbit
for f in passwd group shadow gshadow; do cat "/root/bench-accounts/$f" > "/etc/$f"; done
cat /root/bench-accounts/default-nginx > /etc/default/nginx
kill -HUP "$(cat /run/nginx.pid)"
for s in /etc/init.d/php*-fpm; do "$s" restart >/dev/null 2>&1 || exit 1; done
"""


# The floor's nginx include and log directory (untimed: the engine's equivalents are a
# bootstrap write and one step, negligible beside the push).
FLOOR_SETUP = f"""
set -eu
install -d -m 0755 {web_mod.LOG_DIR}
printf 'include {FLOOR_DIR}/nginx/*.conf;\\n' > {FLOOR_INCLUDE}
"""


FLOOR_TEARDOWN = f"""
set -u
rm -rf {FLOOR_DIR} {FLOOR_INCLUDE} /var/log/konbit
kill -HUP "$(cat /run/nginx.pid)"
"""


# Removes only the tree and the bootstrap includes: users, homes, docroots stay.
DROP_TREE = r"""
set -u
rm -f /etc/nginx/conf.d/konbit.conf /etc/php/*/fpm/pool.d/zz-konbit.conf \
      /etc/nginx/modules-enabled/zz-konbit.conf /etc/systemd/system/nginx.service.d/konbit.conf
rm -rf /etc/konbit
cat /root/bench-accounts/default-nginx > /etc/default/nginx
kill -HUP "$(cat /run/nginx.pid)"
for s in /etc/init.d/php*-fpm; do "$s" restart >/dev/null 2>&1 || exit 1; done
"""


_FLOOR_REMOTE = (
    f"rm -rf {FLOOR_DIR} && mkdir {FLOOR_DIR} && tar -C {FLOOR_DIR} -xf - "
    "&& nginx -t -q && nginx -s reload"
)


@dataclasses.dataclass
class Row:
    case: str
    n: int | str
    seconds: float
    floor: float | None
    execs: int | str
    target: str
    verdict: str


# -- the host -----------------------------------------------------------------------------


def sh(host: TestHost, script: str, *args: str, timeout: float = 300) -> str:
    result = host.exec(["sh", "-c", script, "bench", *args], timeout=timeout)
    if result.returncode != 0:
        raise RuntimeError(f"on {host.name}: exit {result.returncode}: {result.stderr[-2000:]}")
    return result.stdout


def nginx_workers(host: TestHost) -> set[str]:
    out = host.exec(["sh", "-c", 'pgrep -P "$(cat /run/nginx.pid)" || true']).stdout
    return set(out.split())


def settle(host: TestHost, before: set[str], timeout: float = 300) -> None:
    """Wait until nginx finished a reload (new workers, old ones gone): no case overlaps
    the previous one's config parse."""
    deadline = time.monotonic() + timeout
    while True:
        now = nginx_workers(host)
        if now and not now & before:
            return
        if time.monotonic() > deadline:
            log = host.path("/var/log/nginx/error.log").read_text(errors="replace")[-2000:]
            raise RuntimeError(f"nginx did not reload within {timeout} s:\n{log}")
        time.sleep(0.05)


@contextlib.contextmanager
def reloading(host: TestHost) -> Iterator[None]:
    before = nginx_workers(host)
    yield
    settle(host, before)


def reset(host: TestHost) -> None:
    with reloading(host):
        sh(host, _RESET)


# -- engine -------------------------------------------------------------------------------


def build_state(n: int, tag: str, *, disabled: frozenset[int] = frozenset()) -> DesiredState:
    """N static sites, five per account (N/5 accounts); slugs and names distinct per size."""
    accounts = [AccountView(i + 1, f"{tag}a{i + 1}", "active") for i in range(max(1, n // 5))]
    sites = tuple(
        SiteView(
            id=i + 1,
            version=1,
            account=accounts[i // 5 % len(accounts)],
            domain=f"s{i + 1}.{tag}.test",
            aliases=(),
            document_root=f"www/s{i + 1}.{tag}.test",
            php=None,
            https="off",
            enabled=i + 1 not in disabled,
            deleting=False,
        )
        for i in range(n)
    )
    host = HostView(1, HOST_NAME, ("web",), {"web_server": "nginx", "php_versions": ["8.2"]})
    return DesiredState(host=host, accounts=tuple(accounts), sites=sites)


def _kind(argv: Sequence[str]) -> str:
    """Which phase an exec belongs to, from its argv."""
    if argv[:2] == ["sh", "-c"]:
        script = argv[2]
        if script.startswith(getattr(engine_mod, "_FACTS", "\0")):
            return "facts"
        if "konbit-step-failed" in script:  # the steps of a phase batched in one exec
            return "steps"
        # getattr: the engine's scripts are private and may be renamed; "other" then.
        named = {
            getattr(mod, attr, None): kind
            for mod, attr, kind in (
                (engine_mod, "_STAGE", "stage"),
                (engine_mod, "_SWAP", "swap"),
                (engine_mod, "_PRUNE", "prune"),
                (engine_mod, "_INIT_TREE", "bootstrap"),
                (engine_mod, "_WRITE", "bootstrap"),
                (web_mod, "_ENSURE_USER", "steps"),
                (web_mod, "_ENSURE_DOCROOT", "steps"),
                (web_mod, "_ARCHIVE", "steps"),
            )
        }
        return named.get(script, "other")
    if list(argv) == ["sh", "-s"]:  # the steps of a phase, batched, script on stdin
        return "steps"
    first = argv[0]
    if first in ("useradd", "install"):
        return "steps"
    if first == "unshare":
        return "validate"
    if first == "systemctl":
        return "reload"
    if first == "tar":
        return "read-old"
    return "other"


# The proposed fix for a batched steps script that outgrows an argv string (Linux caps one
# at 128 KiB, OpenSSH an exec request at 256 KiB): the same script, sent on stdin.
_SCRIPT_ON_STDIN = 'f="$(mktemp)" && cat > "$f" && sh "$f" < /dev/null; rc=$?; rm -f "$f"; exit $rc'


def engine_apply(
    target: Target,
    key: Any,
    engine: HostEngine,
    state: DesiredState,
    label: str,
    steps_on_stdin: bool = False,
) -> Measure:
    """One reconcile as the panel runs it: a new connection, then ``apply``.

    ``steps_on_stdin`` prototypes the fix above at the transport (bench only): a batched
    steps script travels on stdin instead of in the exec request."""
    phases: dict[str, float] = defaultdict(float)
    started = time.perf_counter()
    with Connection(target, key) as conn:
        phases["connect"] = time.perf_counter() - started
        original = conn.run

        def run(argv: Sequence[str], **kw: Any) -> Any:
            t = time.perf_counter()
            kind = _kind(list(argv))
            if steps_on_stdin and kind == "steps" and argv[:2] == ["sh", "-c"]:
                argv, kw = ["sh", "-c", _SCRIPT_ON_STDIN], {**kw, "stdin": argv[2].encode()}
            try:
                return original(argv, **kw)
            finally:
                phases[kind] += time.perf_counter() - t

        conn.run = run  # type: ignore[method-assign]
        try:
            outcome = engine.apply(conn, state, label)
        except Exception as exc:  # the engine let something escape: report it, go on
            seconds = time.perf_counter() - started
            return Measure(seconds, conn.commands, dict(phases), "error", repr(exc)[:300])
        execs = conn.commands
    seconds = time.perf_counter() - started
    phases["local"] = seconds - sum(phases.values())
    error = f"{outcome.phase}: {brief(outcome.error or '')}" if outcome.result == "failed" else ""
    return Measure(seconds, execs, dict(phases), outcome.result, error)


# -- floor --------------------------------------------------------------------------------


def write_tree(engine: HostEngine, state: DesiredState, root: Path) -> int:
    """The files the engine renders for this state, as they lie under /etc/konbit/live."""
    count = 0
    for plugin in engine.for_state(state):
        for f in plugin.render(state):
            path = root / f.path
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(f.content)
            path.chmod(f.mode)
            count += 1
    return count


def ssh_argv(key: Path, known_hosts: Path, address: str) -> list[str]:
    return [
        "ssh", "-i", str(key), "-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes",
        "-o", f"UserKnownHostsFile={known_hosts}", "-o", "GlobalKnownHostsFile=/dev/null",
        "-o", "StrictHostKeyChecking=yes", "-o", "ConnectTimeout=10", f"root@{address}",
    ]  # fmt: skip


def floor_once(tree: Path, ssh: list[str]) -> float:
    """One tar stream over OpenSSH + one nginx -t + one reload: the least a push can cost.

    The floor's files are included by nginx exactly like the engine's (a conf.d include
    of ``<dir>/nginx/*.conf``, set up untimed), so ``nginx -t`` parses the same server
    blocks and opens the same log files; only one tree is included at a time (two would
    collide on the ``log_format`` name)."""
    started = time.perf_counter()
    tar = subprocess.Popen(["tar", "-C", str(tree), "-cf", "-", "."], stdout=subprocess.PIPE)
    remote = subprocess.run(
        [*ssh, _FLOOR_REMOTE], stdin=tar.stdout, capture_output=True, timeout=600, check=False
    )
    assert tar.stdout is not None
    tar.stdout.close()
    tar.wait()
    seconds = time.perf_counter() - started
    if remote.returncode or tar.returncode:
        raise RuntimeError(f"floor failed ({remote.returncode}): {remote.stderr.decode()[-2000:]}")
    return seconds


# -- output -------------------------------------------------------------------------------


def brief(message: str) -> str:
    """The emerg/error lines of a checker's output (its warnings repeat), else the tail."""
    lines = [x for x in message.splitlines() if "[emerg]" in x or "ERROR" in x]
    return " | ".join(lines)[:400] if lines else message[-400:]
