"""The reconcile bench's click-to-live: the panel as subprocesses, sites POSTed one by one and
the host polled until it serves each, and where the time went."""

from __future__ import annotations

import statistics
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from common import (
    Api,
    account_with_domain,
    api_ts,
    fmt_list,
    median_p95,
    register_host,
    serve_and_work,
    wait_applied,
)
from reconcile_host import HOST_NAME, Row, reset

from panel.testhosts import TestHost

C2L_P50, C2L_P95 = 1.5, 3.0


# -- click-to-live ------------------------------------------------------------------------


def serves(address: str, name: str) -> bool:
    """The host answers 200 with the site's own first page (not nginx's default site)."""
    request = urllib.request.Request(f"http://{address}/", headers={"Host": name})
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return response.status == 200 and name.encode() in response.read()
    except (OSError, urllib.error.HTTPError):
        return False


def click_to_live(host: TestHost, data: Path, token: str, sites: int) -> tuple[list[Row], str]:
    reset(host)
    with serve_and_work(data) as base:
        api = Api(base, token)
        h = register_host(api, HOST_NAME, host, ["web"])
        account = account_with_domain(
            api, "clicklive", "Click to live", "c2l.test", {"sites": 100_000}
        )
        # One unmeasured site first: it creates the account's unix user and home; the 20
        # measured ones are the steady state of an account that already has a site.
        live: list[float] = []
        posted: list[float] = []
        for i in range(sites + 1):
            name = f"s{i}.c2l.test"
            wall = time.time()
            started = time.perf_counter()
            api.call("POST", "/sites", {"account_id": account["id"], "domain": name})
            deadline = started + 30
            while not serves(host.address, name):
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{name} not live after 30 s; see {data}/worker.log")
                time.sleep(0.02)
            if i:
                live.append(time.perf_counter() - started)
                posted.append(wall)
            wait_applied(api, h["id"])
            time.sleep(0.2)  # let the previous reload's old workers go
        applies = api.call("GET", f"/applies?host_id={h['id']}&limit=200")["items"]
        detail = c2l_detail(posted, live, applies)
    p50, p95 = median_p95(live)
    rows = [
        Row("click-to-live p50", sites, p50, None, "", f"< {C2L_P50} s",
            "PASS" if p50 < C2L_P50 else "MISS"),
        Row("click-to-live p95", sites, p95, None, "", f"< {C2L_P95} s",
            "PASS" if p95 < C2L_P95 else "MISS"),
    ]  # fmt: skip
    return rows, detail


def c2l_detail(posted: list[float], live: list[float], applies: list[dict[str, Any]]) -> str:
    """Where click-to-live goes: queue (POST to apply start), reconcile, then to 200."""
    queue, work, after = [], [], []
    for wall, total in zip(posted, live, strict=True):
        first = next((a for a in applies if api_ts(a["started_at"]) >= wall - 0.01), None)
        if first is None or first["finished_at"] is None:
            continue
        q = api_ts(first["started_at"]) - wall
        w = api_ts(first["finished_at"]) - api_ts(first["started_at"])
        queue.append(q)
        work.append(w)
        after.append(total - q - w)
    if not queue:
        return "click-to-live: no applies matched"
    med = statistics.median
    return (
        f"click-to-live medians over {len(queue)}: POST -> apply start {med(queue):.3f} s "
        f"(API + queue pickup), apply {med(work):.3f} s, apply end -> first 200 "
        f"{med(after):.3f} s; all: {fmt_list(live)}"
    )
