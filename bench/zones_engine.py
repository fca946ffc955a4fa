"""The DNS bench's panel side: one DNS host reconciled in this process with the worker's
own ``reconcile_host`` (snapshot, Apply row, SSH connection, ``HostEngine.apply``, record),
timed per part, with its SSH execs counted and the CPU of this process and of the hosts."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from common import Cpu, metered, profiled
from zones_world import Panel

from panel.hosts import reconcile as reconcile_mod
from panel.hosts.reconcile import reconcile_host
from provisioners import engine as engine_mod
from provisioners.dns import Knot
from provisioners.registry import load_plugins
from provisioners.transport import Connection

# The parts of a reconcile, in the order they run.  validate's two checkers run at once
# (two channels), and the stage beside the "before" steps: their sums overlap.
PARTS = (
    "snapshot", "connect", "facts", "render", "read-old", "stage", "steps",
    "conf-check", "check-zones", "swap", "reload", "prune", "other", "record", "rest",
)  # fmt: skip
# Parts that run at the same time as another: only the longer of each pair counts for "rest".
OVERLAPS = (("conf-check", "check-zones"), ("stage", "steps"))


@dataclasses.dataclass
class Run:
    """One reconcile: wall seconds, its result, SSH execs, seconds per part, CPU."""

    seconds: float
    result: str
    error: str
    execs: int
    parts: dict[str, float]
    cpu: Cpu
    served: float | None = None  # from the start: all zones served / the record answered


def exec_kind(argv: Sequence[str]) -> str:
    """Which part of a reconcile an exec is, from its argv."""
    argv = list(argv)
    if argv[:2] == ["sh", "-c"] and len(argv) > 2:
        # getattr: the engine's scripts are private and may be renamed ("other" then).
        named = {
            getattr(engine_mod, attr, None): kind
            for attr, kind in (
                ("_STAGE", "stage"), ("_SWAP", "swap"),
                ("_PRUNE", "prune"), ("_INIT_TREE", "steps"), ("_WRITE", "steps"),
            )
        }  # fmt: skip
        facts = getattr(engine_mod, "_FACTS", None)
        if facts and argv[2].startswith(facts):  # the engine's, then the plugins' facts
            return "facts"
        return named.get(argv[2], "other")
    if argv == ["sh", "-s"]:
        return "steps"
    if argv[:1] == ["unshare"]:
        return "check-zones" if argv[-1].endswith("/check-zones") else "conf-check"
    if argv[:1] == ["sh"] and len(argv) > 1 and argv[1].endswith("/knot/bin/reload"):
        return "reload"
    if argv[:1] == ["tar"]:
        return "read-old"
    return "other"


@contextlib.contextmanager
def _wrapped(
    owner: Any, attr: str, on_done: Callable[[float, tuple[Any, ...]], None]
) -> Iterator[None]:
    """``owner.attr`` timed while inside: ``on_done(seconds, args)`` after each call."""
    original = getattr(owner, attr)

    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            on_done(time.perf_counter() - started, args)

    setattr(owner, attr, timed)
    try:
        yield
    finally:
        setattr(owner, attr, original)


@contextlib.contextmanager
def instrumented() -> Iterator[tuple[dict[str, float], list[int]]]:
    """Seconds per part and the count of SSH execs of the reconciles run inside."""
    parts: dict[str, float] = defaultdict(float)
    execs = [0]

    def add(name: str) -> Callable[[float, tuple[Any, ...]], None]:
        def done(seconds: float, _args: tuple[Any, ...]) -> None:
            parts[name] += seconds

        return done

    def ran(seconds: float, args: tuple[Any, ...]) -> None:
        execs[0] += 1
        parts[exec_kind(args[1])] += seconds

    with contextlib.ExitStack() as stack:
        stack.enter_context(_wrapped(reconcile_mod, "snapshot", add("snapshot")))
        stack.enter_context(_wrapped(reconcile_mod, "record", add("record")))
        stack.enter_context(_wrapped(Connection, "open", add("connect")))
        stack.enter_context(_wrapped(Connection, "run", ran))
        stack.enter_context(_wrapped(Knot, "render", add("render")))
        yield parts, execs


def reconcile(
    panel: Panel,
    host_id: int,
    label: str,
    pids: dict[str, int],
    profile: bool = False,
    then: Callable[[], object] | None = None,
) -> Run:
    """One reconcile of the host, as the worker runs it, in this process; ``then`` is
    called as it returns, before the CPU meters settle (to start a watch)."""
    plugins = load_plugins()

    def run() -> Any:
        return reconcile_host(panel.db, panel.settings, host_id, plugins, f"bench/{label}")

    with instrumented() as (parts, execs), metered(pids) as cpu:
        started = time.perf_counter()
        report = profiled(run, label, tottime_top=20) if profile else run()
        seconds = time.perf_counter() - started
        if then is not None:
            then()
    if report is None:
        raise RuntimeError(f"{label}: the host is leased by someone else")
    out = dict(parts)
    paired = {k for pair in OVERLAPS for k in pair}
    counted = sum(v for k, v in out.items() if k not in paired)
    counted += sum(max(out.get(a, 0.0), out.get(b, 0.0)) for a, b in OVERLAPS)
    out["rest"] = seconds - counted  # Python outside render: lease, plan's hashes, diff
    error = (report.error or "")[:300] if report.result == "failed" else ""
    return Run(seconds, report.result, error, execs[0], out, cpu)
