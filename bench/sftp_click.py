"""The SFTP bench's click-to-usable: the panel as subprocesses, the host registered through
the API, N logins seeded straight into the panel's database, then logins POSTed one by one
and an SFTP login polled until it works; where the time went."""

from __future__ import annotations

import dataclasses
import datetime as dt
import statistics
import time
from pathlib import Path
from typing import Any

import paramiko
import sqlalchemy as sa
from common import (
    Api,
    account_with_domain,
    fmt_list,
    median_p95,
    queue_and_apply,
    register_host,
    serve_and_work,
    wait_applied,
)
from reconcile_host import HOST_NAME, Row
from sftp_host import World, fresh, login, pub, sftp_host_key, wait_login

from panel.testhosts import TestHost
from provisioners.sftp import KIND

C2U_P50 = 1.5  # s, click-to-usable p50 (issue 14)


@dataclasses.dataclass
class Usable:
    answered: float  # POST -> its answer
    visible: float  # POST -> the login in the host's live sftp/passwd
    done: float  # POST -> an SFTP login (auth + channel) worked
    failed: int  # attempts refused before that one


def seed(data: Path, host_id: int, world: World) -> None:
    """The world's accounts, domains, sites and logins, inserted straight into the panel's
    SQLite (1,000 POSTs would each nudge a reconcile); the host's next reconcile takes
    them all.  Bench-side: the panel has no bulk import."""
    import panel.models  # noqa: F401  (every table)
    from panel.core.db import Base, make_engine

    now = dt.datetime.now(dt.UTC)
    stamps = {"version": 1, "created_at": now, "updated_at": now}
    pending = {**stamps, "status": "pending", "status_reason": None}
    t = Base.metadata.tables
    engine = make_engine(f"sqlite:///{data / 'konbit.sqlite3'}")
    try:
        with engine.begin() as conn:
            slugs = [f"cs{s + 1}" for s in range(world.sites)]
            conn.execute(
                sa.insert(t["accounts"]),
                [
                    {"slug": x, "name": x, "email": f"contact@{x}.c2u.test", "status": "active",
                     "quotas": {}, **stamps}
                    for x in slugs
                ],
            )  # fmt: skip
            acc = dict(
                conn.execute(
                    sa.select(t["accounts"].c.slug, t["accounts"].c.id).where(
                        t["accounts"].c.slug.in_(slugs)
                    )
                ).all()
            )
            conn.execute(
                sa.insert(t["domains"]),
                [{"account_id": acc[x], "name": f"{x}.c2u.test", **pending} for x in slugs],
            )
            dom = dict(
                conn.execute(
                    sa.select(t["domains"].c.account_id, t["domains"].c.id).where(
                        t["domains"].c.account_id.in_(acc.values())
                    )
                ).all()
            )
            conn.execute(
                sa.insert(t["sites"]),
                [
                    {"account_id": acc[x], "domain_id": dom[acc[x]], "host_id": host_id,
                     "domain": f"www.{x}.c2u.test", "document_root": f"www/www.{x}.c2u.test",
                     "php": None, "https": "off", "https_redirect": True, "enabled": True,
                     **pending}
                    for x in slugs
                ],
            )  # fmt: skip
            site = dict(
                conn.execute(
                    sa.select(t["sites"].c.account_id, t["sites"].c.id).where(
                        t["sites"].c.account_id.in_(acc.values())
                    )
                ).all()
            )
            rows = []
            for i in range(world.logins):
                a = acc[slugs[world.site_of(i)]]
                spec: dict[str, Any] = {"scope": "site", "ssh_keys": [pub(world.keys[i])],
                                        "enabled": True}  # fmt: skip
                if world.password_every and i % world.password_every == 0:
                    spec["password_hash"] = world.password_hash
                rows.append(
                    {"kind": KIND, "account_id": a, "host_id": None, "site_id": site[a],
                     "name": f"c{world.name(i)}", "spec": spec, **pending}
                )  # fmt: skip
            conn.execute(sa.insert(t["plugin_objects"]), rows)
            hosts = t["hosts"]
            conn.execute(
                sa.update(hosts)
                .where(hosts.c.id == host_id)
                .values(desired_generation=hosts.c.desired_generation + 1)
            )
    finally:
        engine.dispose()


def click_to_usable(
    host: TestHost, data: Path, token: str, world: World, count: int
) -> tuple[list[Row], str]:
    fresh(host)
    usable: list[Usable] = []
    posted_at: list[float] = []
    with serve_and_work(data) as url:
        api = Api(url, token)
        h = register_host(api, HOST_NAME, host, ["web"], nudge=True)
        account = account_with_domain(api, "clicksftp", "Click to SFTP", "c2u.test", {})
        site = api.call("POST", "/sites", {"account_id": account["id"], "domain": "c2u.test"})
        wait_applied(api, h["id"])
        base = 0
        if world.logins:
            started = time.perf_counter()
            seed(data, h["id"], world)
            api.call("POST", f"/hosts/{h['id']}/reconcile")
            wait_applied(api, h["id"], timeout=600)
            base = world.logins
            print(
                f"  click-to-usable: {world.logins} logins on {world.sites} sites seeded in the "
                f"database and applied ({time.perf_counter() - started:.1f} s)",
                flush=True,
            )
        host_key: paramiko.PKey | None = None
        # One unmeasured login first: the account's first login (ProFTPD's host key and
        # start when nothing was seeded); the measured ones are the steady state.
        for i in range(count + 1):
            name = f"click{i}"
            key = paramiko.ECDSAKey.generate()
            wall = time.time()
            started = time.perf_counter()
            api.call(
                "POST",
                f"/objects/{KIND}",
                {"account_id": account["id"], "site_id": site["id"], "name": name,
                 "spec": {"ssh_keys": [pub(key)]}},
            )  # fmt: skip
            answered = time.perf_counter() - started
            if host_key is None:
                wait_applied(api, h["id"], timeout=120)
                host_key = sftp_host_key(host)
            visible, done, failed = wait_login(host, name, key, host_key, started)
            if i:
                usable.append(Usable(answered, visible, done, failed))
                posted_at.append(wall)
            print(
                f"  click-to-usable {name}: POST answered {answered:.3f} s, in live passwd "
                f"{visible:.3f} s, SFTP login done {done:.3f} s ({failed} refused first)",
                flush=True,
            )
            wait_applied(api, h["id"])
            time.sleep(0.2)
        assert host_key is not None
        alone, refused = idle_logins(host, name, key, host_key)
        applies = api.call("GET", f"/applies?host_id={h['id']}&limit=200")["items"]
        detail = detail_text(posted_at, usable, applies, alone, refused, base + count + 1)
    p50, p95 = median_p95([u.done for u in usable])
    rows = [
        Row(f"click-to-usable p50, {base + count + 1} on host", count, p50, None, "",
            f"< {C2U_P50} s", "PASS" if p50 < C2U_P50 else "MISS"),
        Row("click-to-usable p95", count, p95, None, "", "", ""),
    ]  # fmt: skip
    return rows, detail


def idle_logins(
    host: TestHost, name: str, key: paramiko.PKey, host_key: paramiko.PKey, times: int = 5
) -> tuple[float, float]:
    """With the worker idle: the median seconds of an SFTP login that works (an existing
    login) and of one refused (the same login, another key), ``times`` each."""
    good, bad = [], []
    other = paramiko.ECDSAKey.generate()
    for _ in range(times):
        started = time.perf_counter()
        ok = login(host.address, name, key, host_key) is None
        good.append(time.perf_counter() - started if ok else float("nan"))
        started = time.perf_counter()
        refused = login(host.address, name, other, host_key) is not None
        bad.append(time.perf_counter() - started if refused else float("nan"))
    return statistics.median(good), statistics.median(bad)


def detail_text(
    posted: list[float],
    usable: list[Usable],
    applies: list[dict[str, Any]],
    alone: float,
    refused: float,
    n: int,
) -> str:
    """Where click-to-usable goes: the POST, queue pickup, the apply, the login."""
    queue, work = queue_and_apply(posted, applies)
    med = statistics.median
    lines = [
        f"click-to-usable ({n} logins on the host), medians over {len(usable)}:",
        f"  POST answered                   {med(u.answered for u in usable):.3f} s",
    ]
    if queue:
        lines += [
            f"  POST sent -> apply started      {med(queue):.3f} s  (API + queue pickup)",
            f"  apply (Apply row)               {med(work):.3f} s  (all: {fmt_list(sorted(work))})",
        ]
    lines += [
        f"  POST sent -> in live passwd     {med(u.visible for u in usable):.3f} s",
        f"  live passwd -> SFTP login done  {med(u.done - u.visible for u in usable):.3f} s",
        f"  one SFTP login, existing login  {alone:.3f} s  (connect, kex, publickey, channel;"
        " worker idle, median of 5)",
        f"  one login refused (wrong key)   {refused:.3f} s  (median of 5)",
        f"  refused attempts while polling  {sum(u.failed for u in usable)} in all "
        f"({med(u.failed for u in usable):.0f} per login)",
        f"  all: {fmt_list([u.done for u in usable])}",
    ]
    return "\n".join(lines)
