"""What several benches share: the panel as subprocesses, a token API client, waits,
bulk-insert batches, a fresh PostgreSQL bench database, table printing, and CPU meters
(this process, each test host's PID namespace, the machine).

Imported as ``common`` by the scripts in this folder (run as ``.venv/bin/python
bench/<name>.py``: the script's folder is ``sys.path[0]``)."""

from __future__ import annotations

import contextlib
import cProfile
import dataclasses
import datetime as dt
import json
import os
import pstats
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from sqlalchemy.engine import make_url

if TYPE_CHECKING:
    import paramiko

    from panel.testhosts import Lab

VENV_BIN = Path(sys.executable).parent
KONBIT = str(VENV_BIN / "konbit")
BATCH = 5_000

T = TypeVar("T")


def log(msg: str) -> None:
    print(f"[bench] {msg}", file=sys.stderr, flush=True)


# -- the panel database ----------------------------------------------------------------


def chunks(rows: Iterable[dict[str, Any]], size: int = BATCH) -> Iterator[list[dict[str, Any]]]:
    batch: list[dict[str, Any]] = []
    for row in rows:
        batch.append(row)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def fresh_postgres(url: str) -> None:
    """Drop and recreate the bench database (only one whose name says 'bench')."""
    u = make_url(url)
    name = u.database or ""
    if "bench" not in name:
        sys.exit(f"refusing to recreate database {name!r}: its name must contain 'bench'")
    import psycopg

    admin = u.set(drivername="postgresql", database="postgres")
    with psycopg.connect(admin.render_as_string(hide_password=False), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')


# -- the panel as subprocesses ---------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def konbit_init(data: Path) -> str:
    """``konbit init`` of a new data dir; the staff token it prints last."""
    return (
        subprocess.run(
            [KONBIT, "init", "--data-dir", str(data)], capture_output=True, text=True,
            check=True, env={**os.environ, "KONBIT_DATA_DIR": str(data)},
        ).stdout.strip().splitlines()[-1]
    )  # fmt: skip


def wait_healthz(proc: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    """Until ``konbit serve`` answers /healthz (60 s); raises if it exits first."""
    deadline = time.monotonic() + 60
    while True:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited {proc.returncode}; see {log_path}")
        with (
            contextlib.suppress(OSError),
            urllib.request.urlopen(base + "/healthz", timeout=2) as r,
        ):
            if r.status == 200:
                return
        if time.monotonic() > deadline:
            raise RuntimeError(f"server did not answer /healthz; see {log_path}")
        time.sleep(0.2)


def stop(procs: Sequence[subprocess.Popen[bytes]], timeout: float) -> None:
    """SIGTERM each one still running, then wait ``timeout`` s for each, then kill."""
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    for proc in procs:
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def konbit_serve(
    data: Path, log_path: Path, database_url: str | None
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``konbit serve`` alone on ``data`` (its output in ``log_path``; ``database_url`` set as
    ``KONBIT_DATABASE_URL``, or none: the data dir's own), stopped on the way out; yields
    (port, the process) once /healthz answers."""
    port = free_port()
    env = {**os.environ, "KONBIT_DATA_DIR": str(data)}
    if database_url is None:
        env.pop("KONBIT_DATABASE_URL", None)
    else:
        env["KONBIT_DATABASE_URL"] = database_url
    with open(log_path, "wb") as logf:
        proc = subprocess.Popen(
            [KONBIT, "serve", "--port", str(port)],
            env=env,
            stdout=logf,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_healthz(proc, f"http://127.0.0.1:{port}", log_path)
            yield port, proc
        finally:
            stop([proc], 15)


@contextlib.contextmanager
def serve_and_work(data: Path) -> Iterator[str]:
    """``konbit serve`` + ``konbit worker`` on ``data`` (logs ``serve.log``, ``worker.log``
    there), stopped on the way out; yields the server's base URL once /healthz answers."""
    env = {**os.environ, "KONBIT_DATA_DIR": str(data)}
    port = free_port()
    procs: list[subprocess.Popen[bytes]] = []
    logs = [open(data / name, "wb") for name in ("serve.log", "worker.log")]  # noqa: SIM115
    try:
        procs.append(
            subprocess.Popen(
                [KONBIT, "serve", "--host", "127.0.0.1", "--port", str(port)],
                env=env,
                stdout=logs[0],
                stderr=subprocess.STDOUT,
            )
        )
        procs.append(
            subprocess.Popen([KONBIT, "worker"], env=env, stdout=logs[1], stderr=subprocess.STDOUT)
        )
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/healthz")
        yield base
    finally:
        stop(procs, 10)
        for f in logs:
            f.close()


def panel_key(key_path: Path) -> tuple[paramiko.PKey, str]:
    """The panel's SSH key at ``key_path``, made if missing: (the loaded private key, the
    public line for a test host's ``authorized_keys``)."""
    from panel.hosts.sshkey import ensure_key, public_key
    from provisioners.transport import load_client_key

    ensure_key(key_path)
    return load_client_key(key_path), public_key(key_path)


# -- the API ---------------------------------------------------------------------------


class Api:
    def __init__(self, base: str, token: str) -> None:
        self.base = base
        self.token = token

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        request = urllib.request.Request(
            f"{self.base}/api/v1{path}",
            data=data,
            method=method,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            raise RuntimeError(f"{method} {path}: {exc.code} {exc.read()[:500]!r}") from None
        return json.loads(raw) if raw else None


def wait_http(url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(url, timeout=2):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_applied(api: Api, host_id: int, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        h = api.call("GET", f"/hosts/{host_id}")
        if h["applied_generation"] >= h["desired_generation"]:
            return
        if time.monotonic() > deadline:
            raise RuntimeError(f"host {host_id} not reconciled: {h}")
        time.sleep(0.05)


def register_host(
    api: Api, name: str, host: Any, roles: list[str], *, nudge: bool = False
) -> dict[str, Any]:
    """POST a test host (its address and pinned host key) with ``roles``; with ``nudge``,
    ask for its first reconcile at once (POST /hosts nudges no worker: the new host would
    wait for the minute's sweep). Returns the host once applied."""
    h: dict[str, Any] = api.call(
        "POST",
        "/hosts",
        {"name": name, "address": host.address, "host_key": host.host_key, "roles": roles},
    )
    if nudge:
        api.call("POST", f"/hosts/{h['id']}/reconcile")
    wait_applied(api, h["id"])
    return h


def account_with_domain(
    api: Api, slug: str, name: str, domain: str, quotas: dict[str, int]
) -> dict[str, Any]:
    """POST an account (contact@``domain``, ``quotas``) and its one domain; the account."""
    account: dict[str, Any] = api.call(
        "POST",
        "/accounts",
        {"slug": slug, "name": name, "email": f"contact@{domain}", "quotas": quotas},
    )
    api.call("POST", "/domains", {"account_id": account["id"], "name": domain})
    return account


def api_ts(value: str) -> float:
    """A timestamp of an API answer (UTC when it says no zone), as epoch seconds."""
    stamp = dt.datetime.fromisoformat(value)
    if stamp.tzinfo is None:
        stamp = stamp.replace(tzinfo=dt.UTC)
    return stamp.timestamp()


def queue_and_apply(
    posted: list[float], applies: list[dict[str, Any]]
) -> tuple[list[float], list[float]]:
    """For each POST (wall-clock time sent), the wait until the first Apply that started
    after it, and that Apply's own duration (from the API's Apply rows)."""
    ordered = sorted(applies, key=lambda a: api_ts(a["started_at"]))
    queue, work = [], []
    for wall in posted:
        first = next((a for a in ordered if api_ts(a["started_at"]) >= wall - 0.01), None)
        if first is None or first["finished_at"] is None:
            continue
        queue.append(api_ts(first["started_at"]) - wall)
        work.append(api_ts(first["finished_at"]) - api_ts(first["started_at"]))
    return queue, work


# -- figures ---------------------------------------------------------------------------


@dataclasses.dataclass
class Measure:
    """One reconcile timed around ``HostEngine.apply``: seconds, SSH execs, seconds per
    phase, the outcome's result and error."""

    seconds: float
    execs: int
    phases: dict[str, float]
    result: str = ""
    error: str = ""


class Timed(Protocol):
    @property
    def seconds(self) -> float: ...


M = TypeVar("M", bound=Timed)


def median_measure(runs: list[M]) -> M:
    return sorted(runs, key=lambda m: m.seconds)[len(runs) // 2]


def median_p95(values: list[float]) -> tuple[float, float]:
    return statistics.median(values), statistics.quantiles(values, n=20, method="inclusive")[18]


def profiled(fn: Callable[[], T], title: str, tottime_top: int = 0) -> T:
    """``fn()`` under cProfile; prints the top 25 by cumulative time (and the top
    ``tottime_top`` by own time, if any)."""
    prof = cProfile.Profile()
    result = prof.runcall(fn)
    print(f"\n--- cProfile: {title} (cumulative, top 25)")
    pstats.Stats(prof).sort_stats("cumulative").print_stats(25)
    if tottime_top:
        print(f"--- cProfile: {title} (tottime, top {tottime_top})")
        pstats.Stats(prof).sort_stats("tottime").print_stats(tottime_top)
    return result


def fmt_list(values: Sequence[float]) -> str:
    return "[" + ", ".join(f"{v:.3f}" for v in values) + "]"


def print_columns(head: Sequence[str], body: Sequence[Sequence[str]]) -> None:
    """A table, each column as wide as its widest cell, a dashed line under the head."""
    widths = [max(len(x) for x in col) for col in zip(head, *body, strict=True)]
    for line in (head, tuple("-" * w for w in widths), *body):
        print("  ".join(x.ljust(w) for x, w in zip(line, widths, strict=True)).rstrip())


# -- CPU: this process, test hosts, the machine -----------------------------------------

CLK_TCK = os.sysconf("SC_CLK_TCK")


def load_average() -> str:
    one, five, fifteen = os.getloadavg()
    return f"{one:.2f} {five:.2f} {fifteen:.2f} ({os.cpu_count()} CPUs)"


def machine_busy() -> float:
    """CPU seconds the whole machine spent busy since boot (``/proc/stat``: all but idle
    and iowait), every process and the kernel's interrupts included."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def namespace_cpu(pid: int) -> float:
    """CPU seconds used so far by the processes in the PID namespace of ``pid`` (a test
    host's ``host.pid``): for each live process its own time plus that of the children it
    reaped, so a command that ran and ended counts once (in whoever waited for it).
    Read a moment after a command ends: its time lands once its parent reaped it."""
    try:
        ns = os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return 0.0
    total = 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if os.readlink(f"/proc/{entry.name}/ns/pid") != ns:
                continue
            with open(f"/proc/{entry.name}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:  # ended meanwhile
            continue
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / CLK_TCK


@dataclasses.dataclass
class Cpu:
    """Wall and CPU seconds of one measured stretch: this process (every thread), each
    test host by name, the whole machine (anything else running on it too)."""

    seconds: float = 0.0
    panel: float = 0.0
    hosts: dict[str, float] = dataclasses.field(default_factory=dict)
    machine: float = 0.0

    @property
    def other(self) -> float:
        """Machine CPU neither this process nor the hosts account for (the kernel's
        network work, anything else on the machine)."""
        return self.machine - self.panel - sum(self.hosts.values())


@contextlib.contextmanager
def metered(hosts: dict[str, int], settle: float = 0.3) -> Iterator[Cpu]:
    """Fills the yielded ``Cpu`` on leaving; ``hosts``: name -> a PID in its namespace
    (``host.pid``).  The hosts are read ``settle`` s later (reaped commands), untimed."""
    cpu = Cpu()
    before = {name: namespace_cpu(pid) for name, pid in hosts.items()}
    busy, own, started = machine_busy(), time.process_time(), time.perf_counter()
    yield cpu
    cpu.seconds = time.perf_counter() - started
    cpu.panel = time.process_time() - own
    cpu.machine = machine_busy() - busy
    time.sleep(settle)
    cpu.hosts = {name: namespace_cpu(pid) - before[name] for name, pid in hosts.items()}


@contextlib.contextmanager
def lab_for_bench(default: str, subnet: str) -> Iterator[Lab]:
    """The bench's test hosts' lab: ``KONBIT_LAB=<n>`` picks bridge thkb<n>, 10.77.<20+n>
    (as the integration tests do); else the bench's own bridge ``thb<default>0`` on
    ``subnet`` (10.77.x), so two benches and a test run do not meet."""
    from panel.testhosts import Lab

    n = os.environ.get("KONBIT_LAB")
    if n is not None:
        lab = Lab(bridge=f"thkb{n}", subnet=f"10.77.{20 + int(n)}", veth_prefix=f"k{n}-")
    else:
        lab = Lab(bridge=f"thb{default}0", subnet=subnet, veth_prefix=f"b{default}-")
    with lab:
        lab.ensure_base()
        yield lab
