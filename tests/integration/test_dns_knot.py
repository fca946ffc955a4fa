"""Knot DNS on two real test hosts, one primary and one secondary, asked over port 53 with
a real resolver client (dnspython).

The engine is driven directly with hand-made desired states (the panel's zones are
another test's business): every record is answered by both servers, a change reaches the
secondary within seconds (NOTIFY, IXFR), a zone kzonecheck refuses is blamed and frozen
while its previous version keeps serving, and a DNSSEC zone answers with signatures.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Sequence

import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype
import pytest

from panel.core.settings import Settings
from panel.testhosts import TestHost
from provisioners.api import (
    AccountView,
    DesiredState,
    DnsServerView,
    HostView,
    ObjectRef,
    RecordView,
    ZoneView,
)
from provisioners.dns import Knot
from provisioners.engine import HostEngine, Outcome
from provisioners.transport import Connection, Target, load_client_key

pytestmark = pytest.mark.integration

ACME = AccountView(1, "acme", "active")
PRIMARY_ID, SECONDARY_ID = 901, 902


def records(www: str = "192.0.2.10") -> tuple[RecordView, ...]:
    return (
        RecordView("@", "A", 300, "192.0.2.10"),
        RecordView("www", "A", 300, www),
        RecordView("www", "AAAA", 300, "2001:db8::10"),
        RecordView("@", "MX", 3600, "10 mail.provider.test."),
        RecordView("@", "TXT", 3600, '"v=spf1 mx ~all"'),
        RecordView("_dmarc", "TXT", 3600, '"v=DMARC1; p=none"'),
        RecordView("k1._domainkey", "TXT", 3600, '"v=DKIM1; k=rsa; p=MIIBIjANBgkq" "hkiG9w0B"'),
        RecordView("_imaps._tcp", "SRV", 3600, "0 1 993 mail.provider.test."),
        RecordView("@", "CAA", 3600, '0 issue "letsencrypt.org"'),
        RecordView("blog", "CNAME", 300, "www"),
    )


def zone(zid: int, name: str, recs: tuple[RecordView, ...], dnssec: bool = False) -> ZoneView:
    return ZoneView(zid, 1, ACME, name, recs, dnssec, False)


class Dns:
    """The two servers, and the engine applied to each with the zones a test gives."""

    def __init__(self, settings: Settings, primary: TestHost, secondary: TestHost) -> None:
        self.key = load_client_key(settings.ssh_key_path)
        self.primary, self.secondary = primary, secondary
        self.servers = (
            DnsServerView(PRIMARY_ID, primary.name, primary.address, "ns1.provider.test", True),
            DnsServerView(
                SECONDARY_ID, secondary.name, secondary.address, "ns2.provider.test", False
            ),
        )

    def apply(
        self, host: TestHost, zones: Sequence[ZoneView], failed: frozenset[ObjectRef] = frozenset()
    ) -> Outcome:
        host_id = PRIMARY_ID if host is self.primary else SECONDARY_ID
        state = DesiredState(
            host=HostView(host_id, host.name, ("dns",), {}),
            zones=tuple(zones),
            dns_servers=self.servers,
            failed=failed,
        )
        target = Target(host.name, host.address, 22, "root", host.host_key)
        with Connection(target, self.key) as conn:
            return HostEngine([Knot()]).apply(conn, state, f"t{secrets.token_hex(4)}")

    def apply_both(self, zones: Sequence[ZoneView]) -> tuple[Outcome, Outcome]:
        first = self.apply(self.primary, zones)
        assert first.result in ("applied", "noop"), first.log
        second = self.apply(self.secondary, zones)
        assert second.result in ("applied", "noop"), second.log
        return first, second


@pytest.fixture(scope="module")
def servers(settings: Settings, dns1: TestHost, dns2: TestHost) -> Dns:
    return Dns(settings, dns1, dns2)


def ask(host: TestHost, name: str, rdtype: str, dnssec: bool = False) -> dns.message.Message:
    query = dns.message.make_query(name, rdtype, want_dnssec=dnssec)
    return dns.query.udp(query, host.address, timeout=3)


def answer(host: TestHost, name: str, rdtype: str) -> set[str]:
    """The data of the answer's RRset of that name and type ({} when none)."""
    response = ask(host, name, rdtype)
    want = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == want for rd in rrset}


def serial(host: TestHost, name: str) -> int:
    (soa,) = ask(host, name, "SOA").answer
    return int(soa[0].serial)


def until(
    host: TestHost, name: str, rdtype: str, want: set[str] | None = None, timeout: float = 10.0
) -> float:
    """Seconds until the host answers ``want`` (any data when None); fails past ``timeout``."""
    started = time.monotonic()
    while True:
        got = answer(host, name, rdtype)
        if got == want if want is not None else got:
            return time.monotonic() - started
        if time.monotonic() - started > timeout:
            raise AssertionError(f"{host.name}: {name} {rdtype} is {got} after {timeout} s")
        time.sleep(0.01)


def test_every_record_is_answered_by_the_primary_and_the_secondary(servers: Dns) -> None:
    zones = [zone(1, "acme.test", records()), zone(2, "beta.test", records("192.0.2.20"))]
    started = time.monotonic()
    first, second = servers.apply_both(zones)
    print(
        f"\nfirst apply, 2 zones: primary {first.seconds:.2f} s, secondary {second.seconds:.2f}"
        f" s ({time.monotonic() - started:.2f} s both)"
    )
    for host in (servers.primary, servers.secondary):
        until(host, "beta.test", "SOA")
        assert answer(host, "acme.test", "A") == {"192.0.2.10"}
        assert answer(host, "www.acme.test", "A") == {"192.0.2.10"}
        assert answer(host, "www.beta.test", "A") == {"192.0.2.20"}
        assert answer(host, "www.acme.test", "AAAA") == {"2001:db8::10"}
        assert answer(host, "acme.test", "MX") == {"10 mail.provider.test."}
        assert answer(host, "acme.test", "TXT") == {'"v=spf1 mx ~all"'}
        assert answer(host, "_dmarc.acme.test", "TXT") == {'"v=DMARC1; p=none"'}
        assert answer(host, "k1._domainkey.acme.test", "TXT") == {
            '"v=DKIM1; k=rsa; p=MIIBIjANBgkq" "hkiG9w0B"'
        }
        assert answer(host, "_imaps._tcp.acme.test", "SRV") == {"0 1 993 mail.provider.test."}
        assert answer(host, "acme.test", "CAA") == {'0 issue "letsencrypt.org"'}
        assert answer(host, "blog.acme.test", "CNAME") == {"www.acme.test."}
        assert answer(host, "acme.test", "NS") == {"ns1.provider.test.", "ns2.provider.test."}
        (soa,) = answer(host, "acme.test", "SOA")
        assert soa.startswith("ns1.provider.test. hostmaster.acme.test. ")
        response = ask(host, "www.acme.test", "A")
        assert response.flags & dns.flags.AA  # authoritative, not a resolver's answer
        assert ask(host, "nope.acme.test", "A").rcode() == dns.rcode.NXDOMAIN
        assert ask(host, "example.org", "A").rcode() == dns.rcode.REFUSED  # not ours
    assert serial(servers.primary, "acme.test") == serial(servers.secondary, "acme.test")
    # Nothing changed: nothing uploaded, nothing reloaded.
    again = servers.apply(servers.primary, zones)
    assert again.result == "noop", again.log


def test_a_change_reaches_the_secondary_within_seconds(servers: Dns) -> None:
    servers.apply_both([zone(1, "acme.test", records())])
    before = serial(servers.primary, "acme.test")
    seconds = []
    for address in ("192.0.2.31", "192.0.2.32", "192.0.2.33"):
        changed = [zone(1, "acme.test", records(www=address))]
        started = time.monotonic()
        outcome = servers.apply(servers.primary, changed)  # the secondary's files do not change
        assert outcome.result == "applied", outcome.log
        assert answer(servers.primary, "www.acme.test", "A") == {address}  # at once
        until(servers.secondary, "www.acme.test", "A", {address}, timeout=5.0)
        seconds.append(time.monotonic() - started)
        assert servers.apply(servers.secondary, changed).result == "noop"
    print(f"\nchange to answered by the secondary: {', '.join(f'{s:.2f}' for s in seconds)} s")
    # Knot keeps the serial (the zone file's is a placeholder): it grows with each change,
    # and the secondary follows by IXFR.
    after = serial(servers.primary, "acme.test")
    assert after > before
    assert serial(servers.secondary, "acme.test") == after


def test_a_zone_kzonecheck_refuses_keeps_its_old_version_serving(servers: Dns) -> None:
    good = [zone(1, "acme.test", records()), zone(2, "beta.test", records("192.0.2.20"))]
    servers.apply_both(good)
    # A CNAME beside other data at one name: refused by kzonecheck before anything swaps.
    bad = (*records(), RecordView("www", "CNAME", 300, "elsewhere.test."))
    broken = [zone(1, "acme.test", bad), zone(2, "beta.test", records("192.0.2.21"))]
    outcome = servers.apply(servers.primary, broken)
    assert (outcome.result, outcome.phase) == ("failed", "validate")
    assert outcome.error is not None and "another record exists beside CNAME" in outcome.error
    assert set(outcome.failed_objects) == {("zone", 1)}  # the zone alone is blamed
    assert "zone 1 (acme.test)" in outcome.failed_objects[("zone", 1)]
    for host in (servers.primary, servers.secondary):
        assert answer(host, "www.acme.test", "A") == {"192.0.2.10"}
        assert answer(host, "www.acme.test", "CNAME") == set()
        assert answer(host, "www.beta.test", "A") == {"192.0.2.20"}  # nothing went live
    # The zone frozen (the panel's retry): the other zone's change goes on without it.
    retried = servers.apply(servers.primary, broken, failed=frozenset({("zone", 1)}))
    assert retried.result == "applied", retried.log
    until(servers.secondary, "www.beta.test", "A", {"192.0.2.21"})
    assert answer(servers.primary, "www.acme.test", "A") == {"192.0.2.10"}
    # Fixed, it goes live like any change.
    fixed = [zone(1, "acme.test", records("192.0.2.44")), broken[1]]
    assert servers.apply(servers.primary, fixed).result == "applied"
    until(servers.secondary, "www.acme.test", "A", {"192.0.2.44"})


def test_a_dnssec_zone_answers_with_signatures_and_a_deleted_zone_goes(servers: Dns) -> None:
    zones = [zone(1, "acme.test", records()), zone(3, "signed.test", records(), dnssec=True)]
    servers.apply_both(zones)
    for host in (servers.primary, servers.secondary):
        until(host, "signed.test", "SOA")
        response = ask(host, "www.signed.test", "A", dnssec=True)
        types = {rrset.rdtype for rrset in response.answer}
        assert types == {dns.rdatatype.A, dns.rdatatype.RRSIG}
        keys = ask(host, "signed.test", "DNSKEY", dnssec=True)
        assert {rrset.rdtype for rrset in keys.answer} == {
            dns.rdatatype.DNSKEY,
            dns.rdatatype.RRSIG,
        }
        # The parent's DS comes from the published CDS (cds-cdnskey-publish: always).
        assert answer(host, "signed.test", "CDS")
        plain = ask(host, "www.acme.test", "A", dnssec=True)
        assert {rrset.rdtype for rrset in plain.answer} == {dns.rdatatype.A}  # unsigned
    # Deleted: both servers drop it (and Knot's journal and keys of it).
    gone = [zones[0], ZoneView(3, 2, ACME, "signed.test", records(), True, True)]
    first, second = servers.apply_both(gone)
    assert "step: purge Knot's data of signed.test" in first.log + second.log
    for host in (servers.primary, servers.secondary):
        assert ask(host, "www.signed.test", "A").rcode() == dns.rcode.REFUSED
        assert answer(host, "www.acme.test", "A") == {"192.0.2.10"}
