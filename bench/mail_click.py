"""The mail bench's click-to-IMAP: the panel as subprocesses, mailboxes POSTed (optionally
over N seeded ones), the host's users file watched and an IMAP login polled, and where the
time went."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import imaplib
import ssl
import statistics
import time
from pathlib import Path
from typing import Any

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
from mail_host import BOXES_PER_DOMAIN, HOST_NAME, PASSWORD, Row, fresh_host

from panel.testhosts import Lab, TestHost
from provisioners.api import LIVE
from provisioners.mail import USERS

C2I_P50 = 2.0  # s, click-to-IMAP p50


POLL_EVERY = 0.02  # s between two looks at the host's users file


@dataclasses.dataclass
class Login:
    visible: float  # POST -> the address is in the host's live users file
    done: float  # POST -> the first successful IMAP login has ended
    failed: int  # logins refused before that one


# -- click-to-IMAP ------------------------------------------------------------------------


def imap_login(address: str, user: str) -> str | None:
    """One IMAP login over STARTTLS (the test host's self-signed certificate accepted):
    None when it succeeded, else why not."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    started = time.perf_counter()
    try:
        conn = imaplib.IMAP4(address, 143, timeout=10)
    except (imaplib.IMAP4.error, OSError) as exc:
        return f"connect: {exc!r} after {time.perf_counter() - started:.3f} s"
    try:
        conn.starttls(context)
        conn.login(user, PASSWORD)
    except (imaplib.IMAP4.error, OSError) as exc:
        return f"{exc!r} after {time.perf_counter() - started:.3f} s"
    finally:
        with contextlib.suppress(imaplib.IMAP4.error, OSError):
            conn.logout()
    return None


def wait_login(host: TestHost, user: str, started: float, timeout: float = 30) -> Login:
    """Poll the host's live users file every POLL_EVERY until it holds ``user`` (read from
    this machine: no process on the host, no login attempt), then log in over IMAP until
    a login succeeds.  Seconds are counted from ``started``.

    Why not poll with logins: dovecot answers a failed login after auth_failure_delay
    (2 s), and the next login from the same IP, a good one included, waits out its auth
    penalty (~4 s measured): polling by login would measure dovecot's brute-force brake."""
    users = host.path(f"{LIVE}/{USERS}")
    needle = f"\n{user}:".encode()
    deadline = started + timeout
    while True:
        with contextlib.suppress(OSError):
            if needle in b"\n" + users.read_bytes():
                break
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{user} not in {LIVE}/{USERS} within {timeout} s")
        time.sleep(POLL_EVERY)
    visible = time.perf_counter() - started
    failed = 0
    while (why := imap_login(host.address, user)) is not None:
        failed += 1
        print(f"  {user}: login refused at {time.perf_counter() - started:.3f} s: {why}")
        if time.perf_counter() > deadline:
            raise RuntimeError(f"{user}: no IMAP login within {timeout} s")
    return Login(visible, time.perf_counter() - started, failed)


def seed_mailboxes(data: Path, account_id: int, host_id: int, n: int, password_hash: str) -> None:
    """N mailboxes over N/20 new domains of the account, inserted straight into the panel's
    database (through the API each would cost a hash); the host's next reconcile takes
    them all."""
    import panel.models  # noqa: F401  (every table)
    from panel.core.db import Base, make_engine

    now = dt.datetime.now(dt.UTC)
    common = {"version": 1, "status": "pending", "created_at": now, "updated_at": now}
    domains = Base.metadata.tables["domains"]
    mailboxes = Base.metadata.tables["mailboxes"]
    count = max(1, n // BOXES_PER_DOMAIN)
    names = [f"b{d + 1}.c2i.test" for d in range(count)]
    engine = make_engine(f"sqlite:///{data / 'konbit.sqlite3'}")
    try:
        with engine.begin() as conn:
            conn.execute(
                sa.insert(domains), [{"account_id": account_id, "name": x, **common} for x in names]
            )
            found = conn.execute(
                sa.select(domains.c.name, domains.c.id).where(domains.c.name.in_(names))
            )
            ids = {str(row[0]): int(row[1]) for row in found}
            rows = [
                {
                    "account_id": account_id,
                    "domain_id": ids[names[i % count]],
                    "host_id": host_id,
                    "address": f"u{i + 1}@{names[i % count]}",
                    "password_hash": password_hash,
                    "quota_mb": 1,
                    "enabled": True,
                    **common,
                }
                for i in range(n)
            ]
            conn.execute(sa.insert(mailboxes), rows)
    finally:
        engine.dispose()


def click_to_imap(
    lab: Lab, panel_pub: str, data: Path, token: str, count: int, base: int, password_hash: str
) -> tuple[list[Row], str]:
    host = fresh_host(lab, panel_pub)
    logins: list[Login] = []
    posts: list[float] = []
    posted_at: list[float] = []
    with serve_and_work(data) as url:
        api = Api(url, token)
        h = register_host(api, HOST_NAME, host, ["mail"], nudge=True)
        account = account_with_domain(
            api, "clickimap", "Click to IMAP", "c2i.test", {"mailboxes": 100_000}
        )
        if base:
            started = time.perf_counter()
            seed_mailboxes(data, account["id"], h["id"], base, password_hash)
            print(f"  click-to-IMAP: {base} mailboxes seeded in the database "
                  f"({time.perf_counter() - started:.1f} s)", flush=True)  # fmt: skip
        # One unmeasured mailbox first: the host's first mail reconcile (vmail user,
        # postconf, dovecot include); the measured ones are the steady state.
        for i in range(count + 1):
            address = f"box{i}@c2i.test"
            wall = time.time()
            started = time.perf_counter()
            api.call(
                "POST",
                "/mailboxes",
                {
                    "account_id": account["id"],
                    "address": address,
                    "password": PASSWORD,
                    "quota_mb": 100,  # the default 1 GiB each would reach mail_mb at 20
                },
            )
            answered = time.perf_counter() - started
            login = wait_login(host, address, started, timeout=300 if i == 0 else 30)
            if i:
                logins.append(login)
                posts.append(answered)
                posted_at.append(wall)
            print(
                f"  click-to-IMAP {address}: POST answered {answered:.3f} s, in users file "
                f"{login.visible:.3f} s, logged in {login.done:.3f} s"
                + (f" ({login.failed} logins refused first)" if login.failed else ""),
                flush=True,
            )
            wait_applied(api, h["id"], timeout=300 if i == 0 else 60)
            time.sleep(0.3)
        again = time.perf_counter()
        ok = imap_login(host.address, address) is None
        login_alone = time.perf_counter() - again if ok else float("nan")
        applies = api.call("GET", f"/applies?host_id={h['id']}&limit=200")["items"]
        detail = c2i_detail(posted_at, logins, posts, applies, login_alone)
    p50, p95 = median_p95([x.done for x in logins])
    refused = sum(x.failed for x in logins)
    rows = [
        Row(
            f"click-to-IMAP p50, {base + count + 1} on host",
            count,
            p50,
            "",
            f"< {C2I_P50} s",
            "PASS" if p50 < C2I_P50 else "MISS",
            f"{refused} logins refused in all",
        ),
        Row("click-to-IMAP p95", count, p95, "", "", ""),
    ]
    return rows, detail


def c2i_detail(
    posted: list[float],
    logins: list[Login],
    posts: list[float],
    applies: list[dict[str, Any]],
    login_alone: float,
) -> str:
    """Where click-to-IMAP goes: the POST itself, queue pickup, the apply, the login."""
    queue, work = queue_and_apply(posted, applies)
    med = statistics.median
    lines = [
        f"click-to-IMAP, medians over {len(logins)}:",
        f"  POST answered                  {med(posts):.3f} s  (argon2id hash in the request)",
    ]
    if queue:
        lines += [
            f"  POST sent -> apply started     {med(queue):.3f} s  (API + queue pickup)",
            f"  apply (Apply row)              {med(work):.3f} s",
        ]
    lines += [
        f"  POST sent -> in users file     {med(x.visible for x in logins):.3f} s",
        f"  users file -> login done       {med(x.done - x.visible for x in logins):.3f} s",
        f"  one login, existing mailbox    {login_alone:.3f} s  (STARTTLS + argon2id verify)",
        f"  all: {fmt_list([x.done for x in logins])}",
    ]
    return "\n".join(lines)
