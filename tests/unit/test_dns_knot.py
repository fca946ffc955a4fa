"""The Knot plugin's files for a primary and a secondary, from hand-made desired states:
configuration, zone files, DNSSEC, deleted zones, blame, reloads, and what record data
cannot put into a zone file."""

from __future__ import annotations

import dataclasses
import hashlib

import pytest
from pydantic import ValidationError

from provisioners.api import (
    AccountView,
    DesiredState,
    DnsServerView,
    Facts,
    HostView,
    RecordView,
    ZoneView,
)
from provisioners.dns import SETUP, Knot
from provisioners.engine import HostEngine
from provisioners.registry import build_catalog
from provisioners.testing import FakeRunner

ACME = AccountView(1, "acme", "active")
SERVERS = (
    DnsServerView(11, "dns1", "10.0.0.1", "ns1.provider.net", True),
    DnsServerView(12, "dns2", "10.0.0.2", "ns2.provider.net", False),
    DnsServerView(13, "dns3", "2001:db8::3", "ns3.provider.net", False),
)
RECORDS = (
    RecordView("@", "A", 300, "192.0.2.10"),
    RecordView("www", "A", 300, "192.0.2.10"),
    RecordView("@", "MX", 300, "10 mail.provider.net."),
    RecordView("@", "TXT", 300, '"v=spf1 mx -all"'),
    RecordView("_dmarc", "TXT", 300, '"v=DMARC1; p=quarantine"'),
    RecordView("k1._domainkey", "TXT", 300, '"v=DKIM1; k=rsa; p=MIIBIjANBg" "kqhkiG9w0B"'),
    RecordView("_sip._tcp", "SRV", 300, "10 5 5060 sip.acme.org."),
    RecordView("@", "CAA", 300, '0 issue "letsencrypt.org"'),
)


def zone(zid: int, name: str, records: tuple[RecordView, ...] = RECORDS, **kw: object) -> ZoneView:
    values: dict[str, object] = {
        "id": zid,
        "version": 1,
        "account": ACME,
        "name": name,
        "records": records,
        "dnssec": False,
        "deleting": False,
    }
    return ZoneView(**{**values, **kw})  # type: ignore[arg-type]


def state(
    host_id: int, *zones: ZoneView, servers: tuple[DnsServerView, ...] = SERVERS
) -> DesiredState:
    name = next(s.name for s in servers if s.id == host_id)
    return DesiredState(
        host=HostView(host_id, name, ("dns",), {}), zones=zones, dns_servers=servers
    )


def files(st: DesiredState) -> dict[str, str]:
    return {f.path: f.content.decode() for f in Knot().render(st)}


ZONES = (
    zone(5, "acme.org"),
    zone(6, "signed.org", dnssec=True),
    zone(7, "gone.org", deleting=True),
)


def test_the_primary_listens_notifies_the_secondaries_and_lets_only_them_transfer() -> None:
    out = files(state(11, *ZONES))
    assert "listen: [10.0.0.1@53, 127.0.0.1@53]" in out["knot/server.conf"]
    conf = out["knot/knot.conf"]
    assert "include: server.conf" in conf and conf.rstrip().endswith("include: zones/*.conf")
    assert "  - id: host-12  # ns2.provider.net\n    address: 10.0.0.2@53" in conf
    assert "  - id: host-13  # ns3.provider.net\n    address: 2001:db8::3@53" in conf
    assert "address: [10.0.0.2, 2001:db8::3, 127.0.0.1, ::1]\n    action: transfer" in conf
    assert conf.count("notify: [host-12, host-13]") == 2  # both templates
    assert "zonefile-load: difference-no-serial" in conf and "zonefile-sync: -1" in conf
    assert "journal-content: all" in conf and "serial-policy: unixtime" in conf
    assert "master:" not in conf and "action: notify" not in conf
    # Only the signed template signs, with the automatic policy.
    signed = conf[conf.index("  - id: signed") :]
    assert "dnssec-signing: on\n    dnssec-policy: konbit" in signed
    assert (
        "dnssec-signing" not in conf[conf.index("  - id: primary") : conf.index("  - id: signed")]
    )
    assert "policy:\n  - id: konbit\n    algorithm: ecdsap256sha256" in conf


def test_the_primary_has_a_stanza_and_a_zone_file_per_live_zone() -> None:
    out = files(state(11, *ZONES))
    zones = sorted(p for p in out if p.startswith("knot/zones/"))
    assert zones == [
        "knot/zones/5-acme.org.conf",
        "knot/zones/5-acme.org.zone",
        "knot/zones/6-signed.org.conf",
        "knot/zones/6-signed.org.zone",
    ]  # the deleting zone is dropped
    assert out["knot/zones/5-acme.org.conf"] == (
        "zone:\n  - domain: acme.org\n    template: primary\n"
        "    file: /etc/konbit/live/knot/zones/5-acme.org.zone\n"
    )
    assert "    template: signed\n" in out["knot/zones/6-signed.org.conf"]
    assert {"knot/bin/reload", "knot/bin/check-zones", "knot/bin/purge"} <= set(out)


def test_a_zone_file_has_soa_ns_for_every_server_then_the_records() -> None:
    text = files(state(11, *ZONES))["knot/zones/5-acme.org.zone"]
    lines = text.splitlines()
    assert lines[1:4] == [
        "$ORIGIN acme.org.",
        "$TTL 3600",
        "@ 3600 IN SOA ns1.provider.net. hostmaster.acme.org. 1 3600 600 1209600 300",
    ]
    assert lines[4:7] == [
        "@ 3600 IN NS ns1.provider.net.",
        "@ 3600 IN NS ns2.provider.net.",
        "@ 3600 IN NS ns3.provider.net.",
    ]
    assert lines[7:] == [
        "@ 300 IN A 192.0.2.10",
        "www 300 IN A 192.0.2.10",
        "@ 300 IN MX 10 mail.provider.net.",
        '@ 300 IN TXT "v=spf1 mx -all"',
        '_dmarc 300 IN TXT "v=DMARC1; p=quarantine"',
        'k1._domainkey 300 IN TXT "v=DKIM1; k=rsa; p=MIIBIjANBg" "kqhkiG9w0B"',
        "_sip._tcp 300 IN SRV 10 5 5060 sip.acme.org.",
        '@ 300 IN CAA 0 issue "letsencrypt.org"',
    ]


def test_a_server_named_inside_the_zone_gets_glue_and_duplicates_go() -> None:
    servers = (
        DnsServerView(11, "dns1", "10.0.0.1", "ns1.acme.org", True),
        DnsServerView(12, "dns2", "2001:db8::2", "ns2.acme.org", False),
    )
    records = (
        RecordView("@", "NS", 3600, "ns1.acme.org."),  # the same as the panel's own NS
        RecordView("ns2", "AAAA", 300, "2001:db8::99"),  # the zone's own address wins
    )
    text = files(state(11, zone(5, "acme.org", records), servers=servers))[
        "knot/zones/5-acme.org.zone"
    ]
    assert text.count("IN NS ns1.acme.org.") == 1
    assert "ns1 3600 IN A 10.0.0.1" in text
    assert "ns2 300 IN AAAA 2001:db8::99" in text and "2001:db8::2" not in text


def test_a_secondary_lists_the_zones_and_transfers_them_from_the_primary() -> None:
    out = files(state(12, *ZONES))
    assert not [p for p in out if p.endswith(".zone")]
    assert out["knot/zones/5-acme.org.conf"] == (
        "zone:\n  - domain: acme.org\n    template: secondary\n"
    )
    assert out["knot/zones/6-signed.org.conf"].endswith("template: secondary\n")  # signed there
    assert "knot/zones/7-gone.org.conf" not in out
    conf = out["knot/knot.conf"]
    assert "  - id: primary  # ns1.provider.net\n    address: 10.0.0.1@53" in conf
    assert "  - id: notify-from-primary\n    address: 10.0.0.1\n    action: notify" in conf
    assert "master: primary" in conf and "zonefile-load: none" in conf
    assert "notify:" not in conf and "dnssec-signing" not in conf and "10.0.0.2," not in conf
    assert "listen: [10.0.0.2@53, 127.0.0.1@53]" in out["knot/server.conf"]


def test_a_host_without_dns_servers_gets_nothing_and_a_wrong_list_is_refused() -> None:
    bare = DesiredState(host=HostView(11, "dns1", ("dns",), {}), zones=ZONES)
    assert Knot().render(bare) == []
    assert Knot().validate(bare) == []
    stranger = dataclasses.replace(state(12), host=HostView(99, "other", ("dns",), {}))
    with pytest.raises(ValueError, match="not among the DNS servers"):
        Knot().render(stranger)
    two = (SERVERS[0], dataclasses.replace(SERVERS[1], primary=True))
    with pytest.raises(ValueError, match="2 primaries"):
        Knot().render(state(11, servers=two))
    unnamed = (dataclasses.replace(SERVERS[0], ns_name=""), SERVERS[1])
    with pytest.raises(ValueError, match="no name for NS records"):
        Knot().render(state(11, zone(5, "acme.org"), servers=unnamed))


@pytest.mark.parametrize(
    ("record", "why"),
    [
        (RecordView("www", "A", 300, "192.0.2.1\n@ 300 IN NS evil.example."), "printable"),
        (RecordView("www", "TXT", 300, '"a" ('), "unquoted '\\('"),
        (RecordView("www", "TXT", 300, "a ; comment"), "unquoted ';'"),
        (RecordView("www", "TXT", 300, '"unbalanced'), "unbalanced"),
        (RecordView("www", "TXT", 300, ""), "empty"),
        (RecordView("www.acme.org.", "A", 300, "192.0.2.1"), "record name"),
        (RecordView("$INCLUDE", "A", 300, "192.0.2.1"), "record name"),
        (RecordView("www", "DNAME", 300, "x.org."), "record type"),
        (RecordView("www", "A", -1, "192.0.2.1"), "TTL"),
    ],
)
def test_record_data_cannot_leave_its_line(record: RecordView, why: str) -> None:
    with pytest.raises(ValueError, match=why):
        Knot().render(state(11, zone(5, "acme.org", (record,))))


@pytest.mark.parametrize("name", ["../../etc", "acme", "acme.org.", "ac me.org", "ACME.org"])
def test_a_zone_name_is_a_strict_domain(name: str) -> None:
    with pytest.raises(ValueError, match="zone name"):
        Knot().render(state(11, zone(5, name)))


def test_files_and_checker_messages_name_their_zone() -> None:
    knot = Knot()
    assert knot.object_of("knot/zones/5-acme.org.zone") == ("zone", 5)
    assert knot.object_of("knot/zones/5-acme.org.conf") == ("zone", 5)
    assert knot.object_of("knot/knot.conf") is None
    assert knot.blame(
        "sh /etc/konbit/live/knot/bin/check-zones: zone 5 (acme.org): [www.acme.org.] another "
        "record exists beside CNAME\nzone 8 (b.org): [b.org.] missing glue record"
    ) == {("zone", 5), ("zone", 8)}
    assert knot.blame(
        "error: config, file '/etc/konbit/live/knot/zones/9-c.org.conf', line 2, item "
        "'domain', value 'c.org' (duplicate identifier)"
    ) == {("zone", 9)}


def test_checks_the_primary_runs_and_the_secondary_runs() -> None:
    assert Knot().validate(state(11)) == [
        ["knotc", "-c", "/etc/knot/knot.conf", "conf-check"],
        ["sh", "/etc/konbit/live/knot/bin/check-zones"],
    ]
    assert Knot().validate(state(12)) == [["knotc", "-c", "/etc/knot/knot.conf", "conf-check"]]


def test_a_reload_is_as_small_as_the_change() -> None:
    knot, primary, secondary = Knot(), state(11, *ZONES), state(12, *ZONES)
    reload = "/etc/konbit/live/knot/bin/reload"
    assert knot.reload(primary, {"web/x.conf"}) == []
    # A changed zone file: that zone loaded again, no configuration reload.
    assert knot.reload(primary, {"knot/zones/5-acme.org.zone"}) == [
        ["sh", reload, "zones", "acme.org"]
    ]
    assert knot.reload(primary, {"knot/zones/6-signed.org.conf"}) == [
        ["sh", reload, "reload", "signed.org"]
    ]
    assert knot.reload(primary, {"knot/server.conf", "knot/knot.conf"}) == [
        ["sh", reload, "restart"]
    ]
    # A secondary's zones come by transfer: no zone names.
    assert knot.reload(secondary, {"knot/zones/5-acme.org.conf"}) == [["sh", reload, "reload"]]


def test_steps_point_knot_at_the_tree_start_it_and_purge_removed_zones() -> None:
    knot, st = Knot(), state(11, *ZONES)
    fresh = knot.steps(st, Facts(), {"knot/knot.conf"})
    assert [s.description for s in fresh] == [
        "/etc/knot/knot.conf includes the konbit configuration"
    ]
    assert fresh[0].argv[-1] == "# Managed by Konbit.\ninclude: /etc/konbit/live/knot/knot.conf\n"
    ready = Facts.of({SETUP: "conf\nrunning\n"})
    assert knot.steps(st, ready, set()) == []
    stopped = knot.steps(st, Facts.of({SETUP: "conf\n"}), set())
    assert [(s.description, s.argv, s.phase) for s in stopped] == [
        ("start Knot", ("sh", "/etc/konbit/live/knot/bin/reload", "zones"), "after")
    ]
    removed = {"knot/zones/7-gone.org.conf", "knot/zones/7-gone.org.zone"}
    (purge,) = knot.steps(st, ready, removed)
    assert purge.argv == ("sh", "/etc/konbit/live/knot/bin/purge", "gone.org")
    assert (purge.phase, purge.object_ids) == ("after", (("zone", 7),))


def test_a_failed_zone_keeps_what_the_host_has_while_the_others_change() -> None:
    """Through the engine: the frozen zone's files are not staged, another zone's are."""
    knot, old = Knot(), state(11, *ZONES)
    live = {f.path: hashlib.sha256(f.content).hexdigest() for f in knot.render(old)}
    new = dataclasses.replace(
        old,
        zones=(
            zone(5, "acme.org", (RecordView("www", "CNAME", 300, "x.org."), *RECORDS)),
            zone(6, "signed.org", RECORDS[:2], dnssec=True),
        ),
        failed=frozenset({("zone", 5)}),
    )
    fake = FakeRunner().facts(manifest=live, outputs={SETUP: "conf\nrunning\n"})
    plan = HostEngine([knot]).plan(fake, new, with_old=False)
    assert [c.path for c in plan.changes] == ["knot/zones/6-signed.org.zone"]


def test_the_settings_refuse_a_name_that_is_not_a_host_name() -> None:
    settings = build_catalog([Knot()]).host_settings
    ok = settings.model_validate({"dns_ns_name": "ns1.provider.net", "dns_primary": True})
    assert ok.model_dump()["dns_ns_name"] == "ns1.provider.net" and ok.model_dump()["dns_primary"]
    default = settings.model_validate({}).model_dump()
    assert (default["dns_ns_name"], default["dns_primary"]) == ("", False)
    for bad in ("ns1.provider.net.", "ns1", "NS1.provider.net", "ns1.provider.net\nx", "a b.net"):
        with pytest.raises(ValidationError, match="dns_ns_name"):
            settings.model_validate({"dns_ns_name": bad})
