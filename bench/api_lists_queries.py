"""The api_lists bench in-process: the app on the seeded database, the SQL statements each
list endpoint runs by page size, and cProfile of one case."""

from __future__ import annotations

import asyncio
import contextlib
import cProfile
import gc
import io
import pstats
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from api_lists_load import cases, expand
from api_lists_seed import Seeded
from common import log
from sqlalchemy import event

# --------------------------------------------------------------------------- in-process


@contextlib.contextmanager
def in_process(s: Seeded, data_dir: Path) -> Iterator[tuple[Any, list[str]]]:
    """A TestClient on the real app and the list the engine appends each statement to."""
    from starlette.testclient import TestClient

    from panel.app import create_app
    from panel.core.db import Database
    from panel.core.settings import Settings

    db = Database(s.url)
    statements: list[str] = []

    def _record(_c: Any, _cur: Any, statement: str, *_rest: Any) -> None:
        statements.append(statement)

    event.listen(db.engine, "before_cursor_execute", _record)
    app = create_app(Settings(database_url=s.url, data_dir=data_dir), db)
    try:
        with TestClient(app, raise_server_exceptions=True) as client:
            yield client, statements
    finally:
        db.engine.dispose()


def count_queries(s: Seeded, data_dir: Path) -> bool:
    lists = [
        "sites",
        "domains",
        "accounts",
        "mailboxes",
        "mail-aliases",
        "lists",
        "databases",
        "database-users",
        "hosts",
        "users",
        "tokens",
        "audit-events",
        "applies",
    ]
    endpoints = [(f"/api/v1/{p}", s.admin_token, "admin") for p in lists]
    endpoints.insert(1, ("/api/v1/sites", s.member_token, "member"))
    limits = (10, 50, 200)
    ok = True
    head = f"{'endpoint':<24} {'as':<6} " + " ".join(f"{'rows/sql@' + str(n):>13}" for n in limits)
    print(head + "  verdict")
    print("-" * (len(head) + 9))
    with in_process(s, data_dir) as (client, statements):
        for path, token, who in endpoints:
            headers = {"Authorization": f"Bearer {token}"}
            client.get(path, params={"limit": 1}, headers=headers)  # warm: last_used_at update
            cells: list[tuple[int, int]] = []
            trace: list[str] = []
            for limit in limits:
                statements.clear()
                r = client.get(path, params={"limit": limit}, headers=headers)
                assert r.status_code == 200, (path, r.status_code, r.text[:200])
                cells.append((len(r.json()["items"]), len(statements)))
                trace = list(statements)
            counts = {c for _, c in cells}
            rows_grew = cells[-1][0] > cells[0][0]
            verdict = ("flat" if len(counts) == 1 else "GROWS") + (
                "" if rows_grew else " (too few rows to tell)"
            )
            if len(counts) > 1:
                ok = False
            print(
                f"{path.removeprefix('/api/v1/'):<24} {who:<6} "
                + " ".join(f"{f'{n}/{c}':>13}" for n, c in cells)
                + f"  {verdict}"
            )
            if len(counts) > 1:
                for st in trace[:6]:
                    print("      " + " ".join(st.split())[:150])
    return ok


def profile(s: Seeded, data_dir: Path, name: str, n: int) -> None:
    """cProfile ``n`` requests of one case through the real app, all on one thread.

    FastAPI runs sync routes and dependencies in a thread pool, which cProfile does not see;
    here they run inline (``anyio.to_thread.run_sync`` patched) and the ASGI app is called
    through httpx2's ASGITransport, so the profile holds every step of a request."""
    import random

    import anyio.to_thread
    import httpx2

    from panel.app import create_app
    from panel.core.db import Database
    from panel.core.settings import Settings

    async def inline(func: Any, *args: Any, **_kw: Any) -> Any:
        return func(*args)

    anyio.to_thread.run_sync = inline  # type: ignore[assignment]
    case = next(c for c in cases(s) if c.name == name)
    headers = {"Authorization": f"Bearer {case.token}"} if case.token else {}
    db = Database(s.url)
    statements: list[str] = []
    event.listen(db.engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    app = create_app(Settings(database_url=s.url, data_dir=data_dir), db)

    def path() -> str:
        return expand(case, random.randint(case.lo, case.hi) if case.hi else None)

    async def run() -> tuple[cProfile.Profile, float]:
        transport = httpx2.ASGITransport(app=app)
        async with httpx2.AsyncClient(transport=transport, base_url="http://bench") as client:
            for _ in range(30):
                assert (await client.get(path(), headers=headers)).status_code == 200
            statements.clear()
            prof = cProfile.Profile()
            t = time.perf_counter()
            prof.enable()
            for _ in range(n):
                await client.get(path(), headers=headers)
            prof.disable()
            return prof, time.perf_counter() - t

    pauses: list[tuple[int, float]] = []
    started = [0.0]

    def on_gc(phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            started[0] = time.perf_counter()
        else:
            pauses.append((info["generation"], (time.perf_counter() - started[0]) * 1e3))

    gc.callbacks.append(on_gc)
    try:
        prof, took = asyncio.run(run())
    finally:
        gc.callbacks.remove(on_gc)
    db.engine.dispose()
    out = data_dir / f"profile-{name}.pstats"
    prof.dump_stats(out)
    log(f"profile saved to {out} (python -m pstats {out})")
    print(
        f"\nprofile {name}: {n} requests in-process on one thread, "
        f"{took / n * 1e3:.2f} ms each under cProfile, {len(statements) / n:.1f} SQL each"
    )
    for gen in (0, 1, 2):
        ms = [d for g, d in pauses if g == gen]
        if ms:
            print(
                f"gc generation {gen}: {len(ms)} collections, max {max(ms):.1f} ms, "
                f"total {sum(ms):.1f} ms"
            )
    print(
        f"objects tracked by the gc: {len(gc.get_objects())} (gc.freeze() takes them out "
        "of full collections)"
    )
    for key in ("tottime", "cumulative"):
        buf = io.StringIO()
        pstats.Stats(prof, stream=buf).strip_dirs().sort_stats(key).print_stats(30)
        print(buf.getvalue())
