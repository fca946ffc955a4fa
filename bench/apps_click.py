"""The apps bench's install click-to-login: POST a site's application through the API,
wait for its task (``konbit worker``), log in over HTTP with the password the POST
answered; where the time went (queue pickup, the task's steps from its log)."""

from __future__ import annotations

import re
import statistics
import time
from dataclasses import dataclass, field

from apps_world import LongApi, Site, post_install, wp_login
from common import api_ts, fmt_list, log, print_columns

LOG_LINE = re.compile(r"^\[\s*([\d.]+)s\] (.*)$")

# A task log line -> the step it closes (the time since the line before).
STEPS = (
    (re.compile(r"^database .* and its user on their host"), "start, database user's password"),
    (re.compile(r"^database host: reconcile"), "database host reconcile"),
    (re.compile(r"^platform .* put on"), "platform upload (list + put)"),
    (re.compile(r" points at platform "), "platform check + link"),
    (re.compile(r"^\w+ installed$"), "the app's installer"),
    (re.compile(r": 200 with its title"), "health (status script + GET)"),
    (re.compile(r"^done$"), "task end"),
)


def steps_of(task_log: str) -> list[tuple[str, float]]:
    """(step, seconds) from a task's log (its stamps: 0.1 s)."""
    out, last = [], 0.0
    for line in task_log.splitlines():
        m = LOG_LINE.match(line)
        if not m:
            continue
        at, msg = float(m.group(1)), m.group(2)
        name = next((label for rx, label in STEPS if rx.search(msg)), msg[:40])
        out.append((name, at - last))
        last = at
    return out


@dataclass
class Click:
    domain: str
    answered: float  # POST -> its answer
    queued: float  # POST sent -> the task started (the worker's pickup)
    task: float  # the task's own run (its row's started/finished)
    after: float  # the task finished -> the login done (poll lag, the login itself)
    total: float  # POST sent -> a login worked
    refused: int  # logins refused before that one
    steps: list[tuple[str, float]] = field(default_factory=list)

    @property
    def uploaded(self) -> bool:
        return any(name.startswith("platform upload") for name, _ in self.steps)


def click_to_login(api: LongApi, site: Site, platform_id: int, address: str) -> Click:
    """One install, timed from the POST to the first login that works."""
    wall = time.time()
    started = time.perf_counter()
    task_id, site.password = post_install(api, site, platform_id)
    answered = time.perf_counter() - started
    while True:  # the member's page polls its task
        task = api.call("GET", f"/tasks/{task_id}")
        if task["status"] in ("succeeded", "failed", "cancelled"):
            break
        if time.perf_counter() - started > 600:
            raise RuntimeError(f"install of {site.domain}: task {task_id} still {task['status']}")
        time.sleep(0.05)
    if task["status"] != "succeeded":
        raise RuntimeError(f"install of {site.domain} {task['status']}: {task['error']}\n"
                           f"{task['log'][-2000:]}")  # fmt: skip
    seen_done = time.perf_counter()
    refused = 0
    while not wp_login(address, site.domain, "admin", site.password):
        refused += 1
        if time.perf_counter() - seen_done > 30:
            raise RuntimeError(f"{site.domain}: no login 30 s after its install ended")
        time.sleep(0.05)
    total = time.perf_counter() - started
    t0, t1 = api_ts(task["started_at"]), api_ts(task["finished_at"])
    return Click(
        site.domain, answered, t0 - wall, t1 - t0, wall + total - t1, total, refused,
        steps_of(task["log"]),
    )  # fmt: skip


def run_clicks(api: LongApi, sites: list[Site], platform_id: int, address: str) -> list[Click]:
    out = []
    for s in sites:
        c = click_to_login(api, s, platform_id, address)
        log(f"install {s.domain}: login after {c.total:.2f}s (task {c.task:.2f}s"
            f"{', platform uploaded' if c.uploaded else ''})")  # fmt: skip
        out.append(c)
        time.sleep(0.5)  # the worker idle again (its reconcile of the database host ended)
    return out


def print_clicks(clicks: list[Click]) -> None:
    print("\nInstall click-to-login (POST /sites/{id}/app -> its task ends -> WordPress login "
          "over HTTP with the answered password; the page polls the task every 50 ms)")  # fmt: skip
    body = [
        (c.domain, "yes" if c.uploaded else "", f"{c.answered:.3f}", f"{c.queued:.3f}",
         f"{c.task:.2f}", f"{c.after:.3f}", f"{c.total:.2f}", str(c.refused))
        for c in clicks
    ]  # fmt: skip
    print_columns(
        ("site", "upload", "POST s", "queue s", "task s", "->login s", "total s", "refused"),
        body,
    )
    first = [c for c in clicks if c.uploaded]
    later = [c for c in clicks if not c.uploaded]
    for label, group in (("with the platform's upload", first), ("platform on the host", later)):
        if not group:
            continue
        totals = [c.total for c in group]
        print(f"  {label}: {len(group)} install(s), p50 {statistics.median(totals):.2f} s, "
              f"max {max(totals):.2f} s  {fmt_list(totals)}")  # fmt: skip
    print("\n  the task's steps (from its log, 0.1 s stamps; step = since the line before): "
          "median of the later installs, and the first")  # fmt: skip
    names: list[str] = []
    for c in clicks:
        for n, _ in c.steps:
            if n not in names:
                names.append(n)
    rows = []
    for n in names:
        lat = [sum(s for m, s in c.steps if m == n) for c in later if n in dict(c.steps)]
        fst = [sum(s for m, s in c.steps if m == n) for c in first if n in dict(c.steps)]
        rows.append((n, f"{statistics.median(lat):.2f}" if lat else "",
                     f"{fst[0]:.2f}" if fst else ""))  # fmt: skip
    print_columns(("step", "later p50 s", "first s"), rows)
