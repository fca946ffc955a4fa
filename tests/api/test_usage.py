"""The usage API: aggregation semantics an invoice can be reproduced from, CSV beside JSON,
who may read what, and the quota flag."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from panel.core.settings import Settings
from panel.usage.models import AccountUsage
from panel.usage.service import check_quotas, store
from provisioners.api import AccountView, DesiredState, HostView, Sample, SiteView
from tests.conftest import World

T0 = dt.datetime(2026, 3, 30, 10, 0, tzinfo=dt.UTC)


def _state(account: dict[str, Any], site_id: int) -> DesiredState:
    view = AccountView(account["id"], account["slug"], "active")
    site = SiteView(site_id, 1, view, "x.test", (), "www", None, "off", True, False)
    return DesiredState(host=HostView(1, "h1", ("web",), {}), accounts=(view,), sites=(site,))


def _store(world: World, state: DesiredState, at: dt.datetime, samples: list[Sample]) -> None:
    with world.db.session() as session:
        store(session, 1, state, samples, at)
        session.commit()


def _seed(world: World) -> tuple[dict[str, Any], dict[str, Any], int]:
    world.host(["web"])
    account = world.account("acme")
    other = world.account("bravo")
    state = _state(account, 7)
    acct = ("account", account["id"])
    for hour, disk, requests in ((0, 100, 5), (1, 300, 7), (24, 200, 1), (48 + 24, 50, 2)):
        _store(
            world,
            state,
            T0 + dt.timedelta(hours=hour),
            [
                Sample(acct, "disk_bytes", disk),
                Sample(("site", 7), "site_bytes", disk // 2),
                Sample(("site", 7), "http_requests", requests, counter=True),
            ],
        )
    _store(world, _state(other, 8), T0, [Sample(("site", 8), "http_requests", 1000, counter=True)])
    return account, other, state.sites[0].id


def _get(api: Any, **params: Any) -> list[dict[str, Any]]:
    return api.ok("GET", "/usage", params={"from": "2026-03-01", "to": "2026-05-01", **params})[
        "items"
    ]


def test_levels_give_peak_and_average_and_counters_their_sum(world: World) -> None:
    account, _, site_id = _seed(world)
    rows = _get(world.staff, account_id=account["id"], metric="disk_bytes,http_requests")
    by = {(r["period"], r["metric"]): r for r in rows}
    day1 = by[("2026-03-30", "disk_bytes")]
    assert (day1["peak"], day1["average"], day1["sum"], day1["samples"]) == (300, 200, None, 2)
    assert by[("2026-03-30", "http_requests")]["sum"] == 12
    assert by[("2026-03-31", "http_requests")]["sum"] == 1
    assert by[("2026-04-02", "disk_bytes")]["peak"] == 50
    months = _get(world.staff, account_id=account["id"], granularity="month")
    by_month = {(r["period"], r["metric"]): r for r in months}
    assert by_month[("2026-03", "http_requests")]["sum"] == 13
    assert by_month[("2026-03", "disk_bytes")]["peak"] == 300
    assert by_month[("2026-03", "disk_bytes")]["average"] == 200
    assert by_month[("2026-04", "http_requests")]["sum"] == 2
    detail = _get(world.staff, account_id=account["id"], detail="true", metric="site_bytes")
    assert {(r["object_type"], r["object_id"]) for r in detail} == {("site", site_id)}


def test_csv_says_what_json_says(world: World) -> None:
    account, _, _ = _seed(world)
    rows = _get(world.staff, account_id=account["id"], detail="true")
    response = world.staff.get(
        "/usage",
        params={
            "account_id": account["id"],
            "detail": "true",
            "from": "2026-03-01",
            "to": "2026-05-01",
        },
        headers={"Accept": "text/csv"},
    )
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/csv")
    parsed = list(csv.DictReader(io.StringIO(response.text)))
    assert [(r["period"], r["metric"], r["sum"], r["peak"]) for r in parsed] == [
        (r["period"], r["metric"], str(r["sum"] or ""), str(r["peak"] or "")) for r in rows
    ]


def test_members_read_their_own_billing_reads_all_and_nothing_else(world: World) -> None:
    account, other, _ = _seed(world)
    member = world.member(account)
    assert {r["account_id"] for r in _get(member)} == {account["id"]}
    assert member.ok("GET", "/usage", params={"account_id": other["id"]})["items"] == []
    assert member.ok("GET", "/usage/storage", params={"account_id": other["id"]})["items"] == []
    assert member.get("/usage/services").status_code == 403
    billing = world.token_for("billing@provider.test", ["billing"])
    assert {r["account_id"] for r in _get(billing)} == {account["id"], other["id"]}
    assert billing.get("/usage/services").status_code == 200
    # ...and nothing else: no sites, no accounts.
    assert billing.ok("GET", "/sites")["items"] == []
    assert billing.get(f"/accounts/{account['id']}").status_code == 404


def test_provider_totals_per_service(world: World) -> None:
    _seed(world)
    rows = world.staff.ok(
        "GET", "/usage/services", params={"from": "2026-03-01", "to": "2026-05-01"}
    )["items"]
    march = {r["metric"]: r for r in rows if r["period"] == "2026-03"}
    assert march["http_requests"]["sum"] == 1013 and march["http_requests"]["service"] == "web"
    assert "account_id" not in march["http_requests"]


def test_bad_windows_and_metrics_are_422(world: World) -> None:
    for params, field in (
        ({"metric": "bogus"}, "metric"),
        ({"from": "2026-05-01", "to": "2026-04-01"}, "from"),
        ({"from": "2020-01-01", "to": "2026-01-01"}, "to"),
    ):
        r = world.staff.get("/usage", params=params)
        assert r.status_code == 422 and r.json()["errors"][0]["field"] == field, r.text


def test_over_quota_is_flagged_then_suspended_after_the_grace(
    world: World, settings: Settings
) -> None:
    world.host(["web"])
    account = world.account("heavy", disk_mb=1)
    state = _state(account, 9)
    big = [Sample(("account", account["id"]), "disk_bytes", 2 * 1024 * 1024)]
    strict = settings.model_copy(update={"quota_suspend_after_hours": 2.0})
    for hours in (0, 1, 3):
        with world.db.session() as session:
            check_quotas(session, strict, 1, state, big, T0 + dt.timedelta(hours=hours))
            session.commit()
        status = world.staff.ok("GET", f"/accounts/{account['id']}")["status"]
        assert status == ("suspended" if hours == 3 else "active")
    flagged = world.staff.ok("GET", "/usage/storage", params={"over_quota": "true"})["items"]
    assert [a["account_id"] for a in flagged] == [account["id"]]
    actions = [e["action"] for e in world.staff.ok("GET", "/audit-events")["items"]]
    assert "over_quota" in actions and "quota_suspend" in actions
    # Back under the quota: the suspension the quota caused is lifted.
    with world.db.session() as session:
        small = [Sample(("account", account["id"]), "disk_bytes", 1000)]
        check_quotas(session, strict, 1, state, small, T0 + dt.timedelta(hours=4))
        session.commit()
        usage = session.get_one(AccountUsage, account["id"])
        assert usage.over_quota_since is None and usage.suspended_at is None
    assert world.staff.ok("GET", f"/accounts/{account['id']}")["status"] == "active"


def test_rolled_up_days_answer_exactly_what_the_samples_did(world: World) -> None:
    from panel.usage.service import rollup_pending

    account, _, _ = _seed(world)
    cases = [
        ("/usage", {"account_id": account["id"]}),
        ("/usage", {"account_id": account["id"], "detail": "true"}),
        ("/usage", {"account_id": account["id"], "granularity": "month"}),
        ("/usage/services", {"granularity": "day"}),
    ]
    before = [_get_path(world, path, params) for path, params in cases]
    with world.db.session() as session:
        # Finished days only: the last sample's day is still open at this time.
        days = rollup_pending(session, now=T0 + dt.timedelta(hours=72 + 1))
        session.commit()
    assert [d.isoformat() for d in days] == ["2026-03-30", "2026-03-31", "2026-04-01"]
    after = [_get_path(world, path, params) for path, params in cases]
    assert after == before
    with world.db.session() as session:  # and once everything is rolled up
        rollup_pending(session, now=T0 + dt.timedelta(days=30))
        session.commit()
    assert [_get_path(world, path, params) for path, params in cases] == before


def _get_path(world: World, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
    window = {"from": "2026-03-01", "to": "2026-05-01"}
    return world.staff.ok("GET", path, params={**window, **params})["items"]  # type: ignore[no-any-return]
