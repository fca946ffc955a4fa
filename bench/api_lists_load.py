"""The api_lists bench's load: its cases, the real server, wrk or the Python client, the
server's CPU, and the judged table."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from api_lists_seed import Scale, Seeded, cursor_after
from common import konbit_serve, log
from sqlalchemy.engine import make_url

TARGET_RATIO = 3.0


STALL_MS = 10_000


REFERENCE = {"users-me"}  # measured and shown, but not one of the requests the target covers


# --------------------------------------------------------------------------- cases


@dataclass(frozen=True)
class Case:
    name: str
    path: str  # "{rand}" is replaced per request by a random int in [lo, hi]
    token: str | None
    lo: int = 0
    hi: int = 0
    expect_items: int | None = None


def cases(s: Seeded) -> list[Case]:
    deep = cursor_after(s.last_site - 60)  # a full page (and a next cursor) near the end
    return [
        Case("healthz", "/healthz", None),
        # Reference, not judged: the cheapest authenticated request (token lookup, no query).
        Case("users-me", "/api/v1/users/me", s.admin_token),
        Case("sites-first", "/api/v1/sites?limit=50", s.admin_token, expect_items=50),
        Case("sites-deep", f"/api/v1/sites?limit=50&cursor={deep}", s.admin_token, expect_items=50),
        Case(
            "sites-by-account",
            "/api/v1/sites?limit=50&account_id={rand}",
            s.admin_token,
            1,
            s.accounts,
            expect_items=s.last_site // s.accounts,
        ),
        Case(
            "sites-member",
            f"/api/v1/sites?limit=50&account_id={s.member_account}",
            s.member_token,
            expect_items=s.last_site // s.accounts,
        ),
        Case("site-get", "/api/v1/sites/{rand}", s.admin_token, s.first_site, s.last_site),
    ]


def expand(case: Case, rand: int | None = None) -> str:
    if "{rand}" not in case.path:
        return case.path
    return case.path.replace("{rand}", str(rand if rand is not None else case.lo))


def check_case(base: str, case: Case) -> None:
    """One request by hand: 200 and the expected number of items, before timing anything."""
    req = urllib.request.Request(base + expand(case))
    if case.token:
        req.add_header("Authorization", f"Bearer {case.token}")
    with urllib.request.urlopen(req, timeout=30) as resp:  # only ever 127.0.0.1
        body = json.loads(resp.read())
        assert resp.status == 200, (case.name, resp.status)
    if case.expect_items is not None:
        got = len(body["items"])
        assert got == case.expect_items, f"{case.name}: {got} items, not {case.expect_items}"


# --------------------------------------------------------------------------- load


WRK_LUA = r"""
local token, path, lo, hi, limit
local count = 0
function init(args)
  token, path, limit = args[1], args[2], tonumber(args[3])
  lo, hi = tonumber(args[4]), tonumber(args[5])
  if token ~= "-" then wrk.headers["Authorization"] = "Bearer " .. token end
  math.randomseed(os.time() + math.floor(os.clock() * 1e6))
end
function request()
  local p = path
  if hi > 0 then p = string.gsub(path, "{rand}", tostring(math.random(lo, hi))) end
  return wrk.format("GET", p)
end
function response(status, headers, body)
  count = count + 1
  if count == limit then
    io.write("BENCHSTOP\n")  -- wrk sleeps out -d; the runner interrupts it on this line
    io.flush()
    wrk.thread:stop()
  end
end
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests": %d, "duration_us": %d, "p50_us": %d, "p99_us": %d, ' ..
    '"max_us": %d, "errors": %d}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    latency.max, e.connect + e.read + e.write + e.status + e.timeout))
end
"""


@dataclass
class Result:
    case: str
    conc: int
    requests: int
    p50_ms: float
    p99_ms: float
    rps: float
    errors: int
    bg_pct: float = 0.0  # share of the machine's CPU used by other processes meanwhile


def run_wrk(base: str, case: Case, conc: int, n: int, max_s: int, lua: Path) -> Result:
    """wrk with one thread; stopped (SIGINT, as wrk expects) once ``n`` responses are in."""
    cmd = [
        "wrk",
        "-t1",
        f"-c{conc}",
        f"-d{max_s}s",
        "--timeout",
        "30s",
        "-s",
        str(lua),
        base + "/",
        "--",
        case.token or "-",
        case.path,
        str(n),
        str(case.lo),
        str(case.hi),
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert proc.stdout is not None
        lines: list[str] = []
        for line in proc.stdout:
            lines.append(line)
            if line.startswith("BENCHSTOP"):
                proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    found = [x for x in lines if x.startswith("BENCHJSON ")]
    if proc.returncode != 0 or not found:
        raise RuntimeError("wrk said:\n" + "".join(lines))
    d = json.loads(found[0].removeprefix("BENCHJSON "))
    return Result(
        case.name,
        conc,
        d["requests"],
        d["p50_us"] / 1e3,
        d["p99_us"] / 1e3,
        d["requests"] / (d["duration_us"] / 1e6),
        d["errors"],
    )


def percentile(sorted_values: list[float], p: float) -> float:
    idx = max(0, min(len(sorted_values) - 1, round(p / 100 * len(sorted_values) + 0.5) - 1))
    return sorted_values[idx]


def run_python(base: str, case: Case, conc: int, n: int, max_s: int) -> Result:
    import random

    import httpx2

    async def main() -> tuple[list[float], int, float]:
        latencies: list[float] = []
        errors = 0
        left = n
        deadline = time.perf_counter() + max_s
        headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
        limits = httpx2.Limits(max_connections=conc, max_keepalive_connections=conc)
        async with httpx2.AsyncClient(
            base_url=base, headers=headers, limits=limits, timeout=30
        ) as client:

            async def worker() -> None:
                nonlocal left, errors
                while left > 0 and time.perf_counter() < deadline:
                    left -= 1
                    path = expand(case, random.randint(case.lo, case.hi) if case.hi else None)
                    t = time.perf_counter()
                    r = await client.get(path)
                    latencies.append(time.perf_counter() - t)
                    errors += r.status_code != 200

            start = time.perf_counter()
            await asyncio.gather(*(worker() for _ in range(conc)))
            return latencies, errors, time.perf_counter() - start

    lat, errors, took = asyncio.run(main())
    lat.sort()
    return Result(
        case.name,
        conc,
        len(lat),
        percentile(lat, 50) * 1e3,
        percentile(lat, 99) * 1e3,
        len(lat) / took,
        errors,
    )


@contextlib.contextmanager
def server(url: str, data_dir: Path, log_path: Path) -> Iterator[tuple[str, int]]:
    """``konbit serve`` in a subprocess; always stopped (by its pid) on the way out."""
    database_url = None if url.startswith("sqlite") else url
    started: list[subprocess.Popen[bytes]] = []
    try:
        with konbit_serve(data_dir, log_path, database_url) as (port, proc):
            started.append(proc)
            base = f"http://127.0.0.1:{port}"
            log(f"server pid {proc.pid} on {base}")
            yield base, proc.pid
    finally:
        for proc in started:
            log(f"server stopped (exit {proc.returncode})")


TICK = os.sysconf("SC_CLK_TCK")


def _proc_ticks(pid: int) -> int:
    """utime + stime of one process (all its threads), in clock ticks."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])


class CpuMeter:
    """How much CPU other processes (not the server, its database backends, wrk or this
    script) took while one case ran: the machine is shared, so say when a number is noisy."""

    def __init__(self, server_pid: int, pg_database: str | None) -> None:
        self.server_pid = server_pid
        self.pg_database = pg_database

    def _sut_ticks(self) -> int:
        total = _proc_ticks(self.server_pid)
        if self.pg_database:  # backends are titled "postgres: user db addr state"
            marker = f" {self.pg_database} ".encode()
            for d in Path("/proc").iterdir():
                if d.name.isdigit():
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        cmd = (d / "cmdline").read_bytes()
                        if cmd.startswith(b"postgres:") and marker in cmd:
                            total += _proc_ticks(int(d.name))
        return total

    @staticmethod
    def _busy_ticks() -> int:
        v = [int(x) for x in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
        return v[0] + v[1] + v[2] + v[5] + v[6] + v[7]  # user nice system irq softirq steal

    @staticmethod
    def _ours() -> float:
        import resource

        a, b = (
            resource.getrusage(resource.RUSAGE_SELF),
            resource.getrusage(resource.RUSAGE_CHILDREN),
        )
        return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime

    @contextlib.contextmanager
    def measure(self) -> Iterator[list[float]]:
        out: list[float] = []
        t, busy, sut, ours = time.monotonic(), self._busy_ticks(), self._sut_ticks(), self._ours()
        yield out
        wall = time.monotonic() - t
        other = ((self._busy_ticks() - busy) - (self._sut_ticks() - sut)) / TICK
        other -= self._ours() - ours
        out.append(max(0.0, 100 * other / (wall * (os.cpu_count() or 1))))


def measure(
    s: Seeded, scale: Scale, data_dir: Path, client: str, log_path: Path, stress: list[int]
) -> tuple[list[Result], list[Result]]:
    results: list[Result] = []
    stressed: list[Result] = []
    pg_db = None if s.url.startswith("sqlite") else make_url(s.url).database
    with tempfile.TemporaryDirectory() as tmp, server(s.url, data_dir, log_path) as (base, pid):
        lua = Path(tmp) / "bench.lua"
        lua.write_text(WRK_LUA)
        meter = CpuMeter(pid, pg_db)

        def run(case: Case, conc: int, n: int, max_s: int) -> Result:
            with meter.measure() as bg:
                if client == "wrk":
                    r = run_wrk(base, case, conc, n, max_s, lua)
                else:
                    r = run_python(base, case, conc, n, max_s)
            r.bg_pct = bg[0]
            return r

        all_cases = cases(s)
        for case in all_cases:
            check_case(base, case)
            run(case, 4, 50, 10)  # warm-up: imports, caches, pool connections
        for conc, n in ((1, scale.requests_c1), (20, scale.requests_c20)):
            for case in all_cases:
                r = run(case, conc, n, scale.max_seconds)
                log(
                    f"  c={conc:<2} {case.name:<17} n={r.requests:<5} p50={r.p50_ms:7.2f}ms "
                    f"p99={r.p99_ms:7.2f}ms {r.rps:7.0f} req/s errors={r.errors} "
                    f"other CPU {r.bg_pct:.0f}%"
                )
                results.append(r)
        first = next(c for c in all_cases if c.name == "sites-first")
        for conc in stress:  # many clients: does the server stay up, or stall on its pools?
            r = run(first, conc, max(1_000, 10 * conc), 60)
            log(f"  stress c={conc} n={r.requests} p99={r.p99_ms:.0f}ms errors={r.errors}")
            stressed.append(r)
    return results, stressed


def judged(results: list[Result]) -> list[tuple[Result, float, float, str]]:
    """Each result with its p50 and p99 ratios to /healthz at the same concurrency."""
    hz = {r.conc: r for r in results if r.case == "healthz"}
    out = []
    for r in results:
        q50, q99 = r.p50_ms / hz[r.conc].p50_ms, r.p99_ms / hz[r.conc].p99_ms
        verdict = (
            "-"
            if r.case == "healthz"
            else "ref"
            if r.case in REFERENCE
            else "PASS"
            if max(q50, q99) <= TARGET_RATIO and not r.errors
            else "MISS"
        )
        out.append((r, q50, q99, verdict))
    return out


def table(rows: list[tuple[Result, float, float, str]]) -> str:
    head = (
        f"{'case':<17} {'conc':>4} {'n':>5} {'p50 ms':>8} {'p99 ms':>8} {'req/s':>7} "
        f"{'p50/hz':>7} {'p99/hz':>7} {'err':>4} {'bg%':>4}  verdict"
    )
    lines = [head, "-" * len(head)]
    for r, q50, q99, verdict in rows:
        lines.append(
            f"{r.case:<17} {r.conc:>4} {r.requests:>5} {r.p50_ms:>8.2f} "
            f"{r.p99_ms:>8.2f} {r.rps:>7.0f} {q50:>7.2f} {q99:>7.2f} {r.errors:>4} "
            f"{r.bg_pct:>4.0f}  {verdict}"
        )
    return "\n".join(lines)
