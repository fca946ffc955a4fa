"""Benchmark: reconcile one real mail test host at N mailboxes, then click-to-IMAP.

For each N (100, 1,000, 10,000 by default) on a fresh mail test host (postfix + dovecot):
N mailboxes over N/20 domains (one account each) plus two aliases per domain, all with
one precomputed password hash (hashing is timed on its own: the API pays it per mailbox).

* first apply (a fresh host: vmail user, postconf, dovecot include, every map built),
* a no-op reconcile,
* one mailbox added among N,

each timed around ``HostEngine.apply`` including the SSH connect, as the panel does per
reconcile, with the SSH execs it took (``conn.commands``) and the time per phase (every
exec is timed and classified; "local" is Python: render, hash, tar).  After the first
apply, the pieces of the mail checker (postmap per map, ``postfix check``, ``doveconf``)
and of the two reloads are timed one by one on the host (untimed by the engine figures).

Then click-to-IMAP: ``konbit serve`` + ``konbit worker`` subprocesses on a temporary
SQLite data dir, the host registered through the API with roles ["mail"], one account and
domain, and 20 times: POST a mailbox, watch the host's live users file (every 20 ms, read
from this machine) until it holds the address, then log in over IMAP (STARTTLS) until a
login succeeds; p50 and p95 of POST -> end of the first successful login.

    .venv/bin/python bench/mail.py                  # 100, 1,000, 10,000 + click-to-IMAP
    .venv/bin/python bench/mail.py --quick          # 100 and 1,000
    .venv/bin/python bench/mail.py --sizes 10000 --no-click
    .venv/bin/python bench/mail.py --sizes 10000 --no-click --profile added

Why not poll with IMAP logins from the start: dovecot answers a failed login only after
``auth_failure_delay`` (2 s), and then delays the next login from the same IP, a good one
included, by its auth penalty (~4 s measured); with many attempts in flight it answers
"BYE Connection queue full" (100 login processes).  Polling by login would measure
dovecot's brute-force brake, not the panel.  A login that starts while the engine reloads
dovecot is dropped (EOF) and retried at once: the count is reported.

Runs as root (test hosts); all traffic stays on the lab bridge thkb5 (10.77.25.0/24) and
127.0.0.1.  Exit status 1 when a target is missed or a case failed.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import imaplib
import os
import shlex
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import paramiko
import sqlalchemy as sa
from common import (
    Api,
    Measure,
    api_ts,
    fmt_list,
    konbit_init,
    median_measure,
    median_p95,
    panel_key,
    print_columns,
    profiled,
    serve_and_work,
    wait_applied,
)

from panel.mail.service import hash_mail_password
from panel.testhosts import Lab, TestHost
from provisioners import engine as engine_mod
from provisioners.api import (
    LIVE,
    AccountView,
    DesiredState,
    HostView,
    MailAliasView,
    MailboxView,
)
from provisioners.engine import HostEngine
from provisioners.mail import USERS
from provisioners.registry import load_plugins
from provisioners.transport import Connection, Target

HOST_NAME = "mail1"
PASSWORD = "correct horse battery"
BOXES_PER_DOMAIN = 20

FIRST_TARGET = 10.0  # s, 10,000 mailboxes, first apply
ADDED_TARGET = 1.5  # s, one mailbox added among 10,000
TARGET_N = 10_000
C2I_P50 = 2.0  # s, click-to-IMAP p50
C2I_MAILBOXES = 20
POLL_EVERY = 0.02  # s between two looks at the host's users file


@dataclasses.dataclass
class Login:
    visible: float  # POST -> the address is in the host's live users file
    done: float  # POST -> the first successful IMAP login has ended
    failed: int  # logins refused before that one


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


# -- one size -----------------------------------------------------------------------------


def bench_size(
    lab: Lab,
    panel_pub: str,
    key: paramiko.PKey,
    n: int,
    password_hash: str,
    repeat: int,
    profile: str | None,
) -> tuple[list[Row], dict[str, Measure], dict[str, float]]:
    engine = HostEngine(load_plugins())
    host = fresh_host(lab, panel_pub)
    target = target_of(host, key)
    tag = f"n{n}"
    state = build_state(n, tag, password_hash)
    render = render_seconds(engine, state)

    def timed(case: str, st: DesiredState, label: str) -> Measure:
        def run() -> Measure:
            return engine_apply(target, key, engine, st, label)

        m = profiled(run, f"{case} N={n}") if profile == case else run()
        print(
            f"  N={n}: {case} {m.seconds:.3f} s, {m.execs} execs, {m.result} {m.error}",
            flush=True,
        )
        return m

    cases: dict[str, Measure] = {"first": timed("first", state, f"{tag}-first")}
    detail = host_detail(host) if cases["first"].result == "applied" else {}
    detail["render-python"] = render * 1000
    noops = [timed("noop", state, f"{tag}-noop{i}") for i in range(repeat)]
    cases["noop"] = median_measure(noops)
    added = [
        timed("added", build_state(n, tag, password_hash, extra=i + 1), f"{tag}-added{i}")
        for i in range(repeat)
    ]
    cases["added"] = median_measure(added)

    first_target = f"< {FIRST_TARGET} s" if n == TARGET_N else ""
    added_target = f"< {ADDED_TARGET} s" if n == TARGET_N else ""
    specs: list[tuple[str, str, str, str, float | None]] = [
        ("first", "first apply (fresh host)", first_target, "applied",
         FIRST_TARGET if n == TARGET_N else None),
        ("noop", "no-op reconcile", "", "noop", None),
        ("added", "one mailbox added", added_target, "applied",
         ADDED_TARGET if n == TARGET_N else None),
    ]  # fmt: skip
    rows = []
    for key_, case, target_text, expected, limit in specs:
        m = cases[key_]
        if m.result != expected:
            verdict = f"FAIL ({m.result})"
        elif limit is None:
            verdict = ""
        else:
            verdict = "PASS" if m.seconds < limit else "MISS"
        runs = (
            ""
            if key_ == "first"
            else fmt_list([x.seconds for x in (noops if key_ == "noop" else added)])
        )
        rows.append(Row(case, n, m.seconds, m.execs, target_text, verdict, runs))
    return rows, cases, detail


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
        h = api.call(
            "POST",
            "/hosts",
            {
                "name": HOST_NAME,
                "address": host.address,
                "host_key": host.host_key,
                "roles": ["mail"],
            },
        )
        # POST /hosts sets desired_generation=1 but nudges no worker: the new host would
        # wait for the minute's sweep.  Ask for its first reconcile now.
        api.call("POST", f"/hosts/{h['id']}/reconcile")
        wait_applied(api, h["id"])
        account = api.call(
            "POST",
            "/accounts",
            {
                "slug": "clickimap",
                "name": "Click to IMAP",
                "email": "contact@c2i.test",
                "quotas": {"mailboxes": 100_000},
            },
        )
        api.call("POST", "/domains", {"account_id": account["id"], "name": "c2i.test"})
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
    ordered = sorted(applies, key=lambda a: api_ts(a["started_at"]))
    queue, work = [], []
    for wall in posted:
        first = next((a for a in ordered if api_ts(a["started_at"]) >= wall - 0.01), None)
        if first is None or first["finished_at"] is None:
            continue
        queue.append(api_ts(first["started_at"]) - wall)
        work.append(api_ts(first["finished_at"]) - api_ts(first["started_at"]))
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


# -- output -------------------------------------------------------------------------------


def print_table(rows: list[Row]) -> None:
    head = ("case", "N", "seconds", "SSH execs", "target", "PASS/MISS", "runs")
    body = [
        (r.case, str(r.n), f"{r.seconds:.3f}", str(r.execs), r.target, r.verdict, r.note)
        for r in rows
    ]
    print_columns(head, body)


PHASES = ("connect", "facts", "local", "steps<", "stage", "validate", "swap",
          "reload-postfix", "reload-dovecot", "prune", "steps>", "read-old", "other")  # fmt: skip


def print_phases(per_size: dict[int, dict[str, Measure]]) -> None:
    print("\nseconds per phase (steps< / steps> = batched steps before / after the swap; "
          "steps< runs beside stage; local = no exec running: render, hash, tar)")  # fmt: skip
    short = [p.replace("reload-", "rl-") for p in PHASES]
    print("N       case   " + " ".join(f"{p:>10}" for p in short))
    for n, cases in per_size.items():
        for case, m in cases.items():
            cells = " ".join(f"{m.phases.get(p, 0.0):10.3f}" for p in PHASES)
            print(f"{n:<7} {case:<6} {cells}")
    for n, cases in per_size.items():
        for case, m in cases.items():
            if m.error:
                print(f"N={n} {case}: {m.result}: {m.error}")


def print_detail(details: dict[int, dict[str, float]]) -> None:
    keys = sorted({k for d in details.values() for k in d if not k.startswith("bytes-")})
    sizes = sorted({k for d in details.values() for k in d if k.startswith("bytes-")})
    print("\non the host after the first apply, one at a time (ms; sizes in bytes)")
    print(f"{'':22}" + "".join(f"{n:>12}" for n in details))
    for k in [*keys, *sizes]:
        print(f"{k:22}" + "".join(f"{d.get(k, float('nan')):12.0f}" for d in details.values()))


def code_version() -> str:
    """The commit the engine and plugins come from, and any uncommitted change to them
    (others edit the tree while benches run)."""
    root = Path(__file__).resolve().parent.parent
    git = ["git", "-C", str(root)]

    def out(*args: str) -> str:
        done = subprocess.run([*git, *args], capture_output=True, text=True, check=False)
        return done.stdout

    head = out("log", "-1", "--format=%h %s").strip()[:72]
    dirty = out("status", "--short", "provisioners", "templates/hosts/mail")
    changed = " ".join(line[3:] for line in dirty.splitlines())
    return head + (f" + uncommitted: {changed}" if changed else "")


# -- main ---------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument(
        "--sizes",
        type=lambda s: [int(x) for x in s.split(",")],
        default=[100, 1000, 10_000],
        help="comma-separated mailbox counts",
    )
    parser.add_argument("--quick", action="store_true", help="sizes 100,1000")
    parser.add_argument(
        "--repeat", type=int, default=3, help="no-op and one-added runs per size (median)"
    )
    parser.add_argument("--hashes", type=int, default=5, help="hashes timed")
    parser.add_argument("--no-click", action="store_true", help="skip click-to-IMAP")
    parser.add_argument("--click-mailboxes", type=int, default=C2I_MAILBOXES)
    parser.add_argument(
        "--click-base", type=int, default=0, help="mailboxes seeded first (click-to-IMAP at scale)"
    )
    parser.add_argument(
        "--profile",
        choices=["first", "noop", "added"],
        help="cProfile this engine case (every size)",
    )
    args = parser.parse_args()  # fmt: skip
    sizes = [100, 1000] if args.quick else args.sizes
    if os.geteuid() != 0:
        sys.exit("run as root (test hosts)")

    print(f"code: {code_version()}; load at start: {os.getloadavg()}", flush=True)
    per_hash = time_hashing(args.hashes)
    password_hash = hash_mail_password(PASSWORD)
    print(
        f"hash_mail_password: {per_hash:.3f} s per mailbox (mean of {args.hashes}); "
        f"the API pays {per_hash * 10_000:.0f} s of CPU to create 10,000 mailboxes",
        flush=True,
    )
    rows: list[Row] = []
    per_size: dict[int, dict[str, Measure]] = {}
    details: dict[int, dict[str, float]] = {}
    c2i = ""
    with tempfile.TemporaryDirectory(prefix="konbit-bench-mail-") as tmp:
        data = Path(tmp) / "data"
        token = konbit_init(data)
        key_path = data / "ssh" / "id_ed25519"
        key, panel_pub = panel_key(key_path)
        with Lab(bridge="thkb5", subnet="10.77.25", veth_prefix="k5-") as lab:
            lab.ensure_base()
            print(f"sizes {sizes}; repeat {args.repeat}", flush=True)
            for n in sizes:
                size_rows, cases, detail = bench_size(
                    lab, panel_pub, key, n, password_hash, args.repeat, args.profile
                )
                rows += size_rows
                per_size[n] = cases
                details[n] = detail
            if not args.no_click:
                try:
                    c2i_rows, c2i = click_to_imap(
                        lab, panel_pub, data, token, args.click_mailboxes, args.click_base,
                        password_hash,
                    )  # fmt: skip
                except Exception as exc:  # keep the engine figures
                    print(f"click-to-IMAP failed: {str(exc)[:2000]}", flush=True)
                    for name in ("worker.log", "serve.log"):
                        kept = Path(f"/var/tmp/konbit-bench-mail-{name}")
                        kept.write_bytes((data / name).read_bytes())
                        print(f"  {name}: kept as {kept}", flush=True)
                    c2i_rows = [Row("click-to-IMAP p50", "", float("nan"), "", "", "FAIL")]
                rows += c2i_rows
    print()
    rows.insert(0, Row("hash_mail_password", 1, per_hash, "", "", "", "API, per mailbox"))
    print_table(rows)
    print_phases(per_size)
    print_detail(details)
    if c2i:
        print("\n" + c2i)
    print(f"\nload: {os.getloadavg()}")
    print("command: " + shlex.join([Path(sys.executable).name, *sys.argv]))
    missed = [r for r in rows if r.verdict.startswith(("MISS", "FAIL"))]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
