"""A member sees the measured storage against the quota and the last 30 days as charts."""

from __future__ import annotations

import datetime as dt
import re

from panel.core.db import utcnow
from panel.usage.service import check_quotas, store
from provisioners.api import AccountView, DesiredState, HostView, Sample
from tests.web.conftest import WebWorld
from tests.web.test_pages import _acme


def test_dashboard_shows_storage_against_quota_and_30_days(web: WebWorld) -> None:
    acme = _acme(web)
    web.world.staff.ok("PATCH", f"/accounts/{acme['id']}", json={"quotas": {"disk_mb": 1}})
    view = AccountView(acme["id"], acme["slug"], "active")
    state = DesiredState(host=HostView(1, "h1", ("web",), {}), accounts=(view,))
    settings = web.app.state.settings
    today = utcnow().replace(hour=1, minute=0, second=0, microsecond=0)
    with web.world.db.session() as session:
        for days_ago, disk, requests in ((3, 500_000, 40), (1, 900_000, 12), (0, 2_000_000, 5)):
            at = today - dt.timedelta(days=days_ago)
            samples = [
                Sample(("account", acme["id"]), "disk_bytes", disk),
                Sample(("account", acme["id"]), "http_requests", requests, counter=True),
            ]
            store(session, 1, state, samples, at)
            check_quotas(session, settings, 1, state, samples, at)
        session.commit()
    b = web.browser()
    b.login("alice@acme.test")
    page = b.get(f"/accounts/{acme['id']}").text
    assert "Storage used" in page and "1.9 MB" in page  # 2,000,000 bytes
    assert "over its storage quota" in page
    bars = re.findall(
        r'<rect x="(\d+)" y="[\d.]+" width="8" height="([\d.]+)"><title>([\d-]+): ([\d,]+)',
        page,
    )
    assert len(bars) == 60  # two charts of 30 days
    heights = {(day, value): float(h) for _x, h, day, value in bars}
    assert heights[(today.date().isoformat(), "2,000,000")] == 60.0
    assert heights[((today - dt.timedelta(days=3)).date().isoformat(), "40")] == 60.0


def test_staff_see_per_service_totals_and_members_do_not(web: WebWorld) -> None:
    acme = _acme(web)
    view = AccountView(acme["id"], acme["slug"], "active")
    state = DesiredState(host=HostView(1, "h1", ("web",), {}), accounts=(view,))
    at = utcnow().replace(minute=0, second=0, microsecond=0)
    with web.world.db.session() as session:
        store(
            session,
            1,
            state,
            [Sample(("account", acme["id"]), "http_requests", 1234, counter=True)],
            at,
        )
        session.commit()
    web.user("ops@provider.test", staff=True)
    staff = web.browser()
    staff.login("ops@provider.test")
    page = staff.get("/staff/usage").text
    assert "http_requests" in page and "1,234" in page and at.strftime("%Y-%m") in page
    member = web.browser()
    member.login("alice@acme.test")
    assert member.get("/staff/usage").status_code in (403, 404)
