"""Wildcard certificates by ACME DNS-01 through the panel's own DNS: pebble (a real ACME
server) resolves every name with the primary DNS test host, so it finds the sites' A
records and the ``_acme-challenge`` answers in the zone the panel serves."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from cryptography import x509

from panel.core.settings import Settings
from panel.sites import acme
from panel.testhosts import Lab, TestHost
from tests.integration.conftest import Panel
from tests.integration.test_dns_knot import answer
from tests.integration.test_https import Pebble, https_get, start_pebble, wait_serial

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def dns_pebble(
    lab: Lab, dns1: TestHost, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Pebble]:
    with start_pebble(lab, tmp_path_factory.mktemp("pebble-dns"), f"{dns1.address}:53") as p:
        yield p


def test_a_wildcard_alias_gets_its_certificate_through_the_zone(
    panel: Panel, web1: TestHost, dns1: TestHost, dns2: TestHost, dns_pebble: Pebble,
    settings: Settings,
) -> None:  # fmt: skip
    web = panel.register(web1)
    servers = [
        panel.register(dns1, roles=["dns"], settings={"dns_ns_name": "ns1.provider.test",
                                                      "dns_primary": True}),
        panel.register(dns2, roles=["dns"], settings={"dns_ns_name": "ns2.provider.test"}),
    ]  # fmt: skip
    account = panel.world.account("golf")
    domain = panel.world.domain(account, "golf.test")
    site = panel.staff.ok("POST", "/sites", 201, json={
        "account_id": account["id"], "domain": "golf.test", "aliases": ["*.golf.test"],
        "https": "acme"})  # fmt: skip
    assert site["aliases"] == ["*.golf.test"]
    assert panel.reconcile(web["id"]).result == "applied"
    for s in servers:
        assert panel.reconcile(s["id"]).result in ("applied", "noop")
    assert answer(dns1, "anything.golf.test", "A") == {web1.address}  # the wildcard's A

    acme_settings = settings.model_copy(update={
        "acme_directory": dns_pebble.directory, "acme_ca_bundle": dns_pebble.ca_file,
        "acme_timeout_seconds": 30.0, "acme_dns_propagation_seconds": 0.2})  # fmt: skip
    outcomes = acme.run_host(panel.world.db, acme_settings, web["id"], plugins=panel.plugins)
    assert [o.ok for o in outcomes] == [True], outcomes
    print(f"wildcard certificate in {outcomes[0].seconds:.2f}s")
    assert panel.reconcile(web["id"]).result == "applied"
    got = panel.staff.ok("GET", f"/sites/{site['id']}")
    assert got["https_status"] == "active" and sorted(got["certificate"]["names"]) == [
        "*.golf.test", "golf.test"]  # fmt: skip
    root = dns_pebble.root()
    wait_serial(web1, "golf.test", root, got["certificate"]["serial"])
    served = https_get(web1, "shop.golf.test", root)
    names = served.cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert "*.golf.test" in names.value.get_values_for_type(x509.DNSName)
    assert served.status == 200
    # The answer left the zone once the order was done.
    for s in servers:
        panel.reconcile(s["id"])
    assert answer(dns1, "_acme-challenge.golf.test", "TXT") == set()
    records = panel.staff.ok("GET", f"/domains/{domain['id']}/records")["items"]
    assert not [r for r in records if r["source"] == "acme"]

    # A wildcard whose domain's DNS is managed elsewhere: refused with the reason.
    other = panel.world.account("hotel")
    elsewhere = panel.world.domain(other, "hotel.test")
    panel.staff.ok("PATCH", f"/domains/{elsewhere['id']}/dns", json={"hosted": False})
    site2 = panel.staff.ok("POST", "/sites", 201, json={
        "account_id": other["id"], "domain": "hotel.test", "aliases": ["*.hotel.test"],
        "https": "acme"})  # fmt: skip
    assert panel.reconcile(web["id"]).result == "applied"
    outcomes = acme.run_host(panel.world.db, acme_settings, web["id"], plugins=panel.plugins)
    assert [o.ok for o in outcomes] == [False], outcomes
    reason = panel.staff.ok("GET", f"/sites/{site2['id']}")["https_reason"]
    assert "managed elsewhere" in reason, reason
