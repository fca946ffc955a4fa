"""DNS hosts: Knot DNS, authoritative, one primary and its secondaries.

Why Knot (Debian's ``knot``, 3.2 in bookworm): its configuration and zone files are plain
files, so zones go through the reconcile like any other managed file (rendered, diffed,
staged, checked by ``knotc conf-check`` and ``kzonecheck``, swapped, one reload); it keeps
serials itself (``zonefile-load: difference-no-serial``: the zone file's serial is a
placeholder, Knot computes what changed, bumps the serial by ``serial-policy`` and keeps
the history in its journal, so secondaries get IXFR), and it signs zones with automatic
key management (``dnssec-signing: on``, keys in its KASP database).

The panel names the primary (``DesiredState.dns_servers``); the primary holds one zone
file per zone and NOTIFYs the secondaries, which transfer the zones from it and keep
them in their journal (no zone file).  In the konbit tree:

* ``knot/server.conf``: where Knot listens (a change needs a restart, not a reload);
* ``knot/knot.conf``: remotes, ACLs, the signing policy, the zone templates;
* ``knot/zones/<id>-<name>.conf``: one zone's stanza, on every server;
* ``knot/zones/<id>-<name>.zone``: its zone file, on the primary only.

Debian's ``/etc/knot/knot.conf``, which knotd and knotc read, becomes one include line.
A zone's two files belong to the zone, so a zone ``kzonecheck`` refuses is blamed alone
and frozen: Knot keeps serving its previous version, the other zones go on.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from provisioners.api import (
    LIVE,
    DesiredState,
    DnsServerView,
    Fact,
    Facts,
    ManagedFile,
    ObjectKind,
    ObjectRef,
    Provisioner,
    RecordView,
    Step,
    ZoneView,
    lines,
)
from provisioners.templating import render, static

MAIN = "/etc/knot/knot.conf"
MAIN_TEXT = f"# Managed by Konbit.\ninclude: {LIVE}/knot/knot.conf\n"
SERVER_CONF = "knot/server.conf"
SOCKET = "/run/knot/knot.sock"  # knotc given it needs not parse the configuration
ZONES = "knot/zones"
# Zone timers: NOTIFY carries changes at once; refresh and retry only cover a lost NOTIFY.
TTL = 3600
SOA_TIMERS = "3600 600 1209600 300"  # refresh, retry, expire, negative-answer TTL
PLACEHOLDER_SERIAL = 1  # Knot keeps the real one (difference-no-serial)

_LABEL = r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?"
_FQDN = re.compile(rf"(?=.{{1,253}}$){_LABEL}(?:\.{_LABEL})+")
# Relative owner names: "@", "www", "_dmarc", "k1._domainkey", "*.dev".
_OWNER_LABEL = r"[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?"
_OWNER = re.compile(rf"@|(?:\*|{_OWNER_LABEL})(?:\.{_OWNER_LABEL})*")
TYPES = frozenset({"A", "AAAA", "CNAME", "MX", "TXT", "SRV", "CAA", "NS"})
_ZONE_FILE = re.compile(rf"{ZONES}/(\d+)-([^/]+)\.(conf|zone)")
# What the checkers say: our zone check ("zone 12 (example.org): ...") and Knot's own
# configuration errors, which name the file ("file '/etc/konbit/live/knot/zones/12-...'").
_BLAMED = re.compile(r"zone (\d+) \(|/knot/zones/(\d+)-")


def check_ns_name(value: str) -> str:
    """A server's name in NS records: a lower-case FQDN without the trailing dot."""
    if value and not _FQDN.fullmatch(value):
        raise ValueError("must be a host name like ns1.example.org (lower case, no final dot)")
    return value


class DnsSettings(BaseModel):
    dns_ns_name: Annotated[str, AfterValidator(check_ns_name)] = Field(
        default="",
        description="DNS hosts: this server's name in the zones' NS records (ns1.example.org)",
    )
    dns_primary: bool = Field(
        default=False,
        description="DNS hosts: the primary, which holds the zones (the others transfer them)",
    )
    # Any host: how the zones name and reach it (the panel's zones read these three).
    public_ipv4: ipaddress.IPv4Address | None = Field(
        default=None,
        description="any host: its address in the zones' A records (default: its address, "
        "when that is an IPv4 address)",
    )
    public_ipv6: ipaddress.IPv6Address | None = Field(
        default=None,
        description="any host: its address in the zones' AAAA records",
    )
    public_name: Annotated[str, AfterValidator(check_ns_name)] = Field(
        default="",
        description="mail and lists hosts: the name MX records point at (default: mx-<host> "
        "inside each zone)",
    )


SETUP = Fact(
    "knot_setup",
    f"head -n 1 {MAIN} 2>/dev/null | grep -qxF '# Managed by Konbit.' && echo conf\n"
    f"knotc -s {SOCKET} status >/dev/null 2>&1 && echo running\n"
    "true",
    lines,
)


def _safe_data(data: str) -> str:
    """A record's data stays on its own line and ends where it should: printable ASCII,
    balanced quotes, no unquoted parenthesis (which would swallow the next lines) or
    semicolon (a comment).  The panel built it from checked values; this is a fence."""
    quoted = escaped = False
    for ch in data:
        if not " " <= ch <= "~":
            raise ValueError(f"refusing record data {data!r}: not printable ASCII")
        if escaped:
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted = not quoted
        elif not quoted and ch in "();":
            raise ValueError(f"refusing record data {data!r}: unquoted {ch!r}")
    if quoted or escaped or not data.strip():
        raise ValueError(f"refusing record data {data!r}: unbalanced or empty")
    return data


def _record_line(zone: ZoneView, record: RecordView) -> str:
    if not _OWNER.fullmatch(record.name):
        raise ValueError(f"refusing record name {record.name!r} in zone {zone.name}")
    if record.type not in TYPES:
        raise ValueError(f"refusing record type {record.type!r} in zone {zone.name}")
    if not 0 <= record.ttl <= 2**31 - 1:
        raise ValueError(f"refusing TTL {record.ttl} in zone {zone.name}")
    return f"{record.name} {int(record.ttl)} IN {record.type} {_safe_data(record.data)}"


def _zone_name(zone: ZoneView) -> str:
    # A path component and a name in Knot's configuration: strict.
    if not _FQDN.fullmatch(zone.name):
        raise ValueError(f"refusing zone name {zone.name!r}")
    return zone.name


def _address(server: DnsServerView) -> str:
    try:
        return str(ipaddress.ip_address(server.address))
    except ValueError:
        raise ValueError(
            f"DNS server {server.name}: address {server.address!r} is not an IP address"
        ) from None


def _ns(server: DnsServerView) -> str:
    if not server.ns_name:
        raise ValueError(f"DNS server {server.name} has no name for NS records (dns_ns_name)")
    return check_ns_name(server.ns_name)


def _relative(name: str, zone: str) -> str | None:
    """``name`` relative to ``zone`` ("@" for the apex), None when it lies outside."""
    if name == zone:
        return "@"
    if name.endswith(f".{zone}"):
        return name[: -len(zone) - 1]
    return None


def zone_file(zone: ZoneView, servers: Sequence[DnsServerView]) -> bytes:
    """The zone as the primary loads it: SOA (the primary as its source, a placeholder
    serial), NS for every server, glue for a server named inside the zone, then the
    zone's records (each once)."""
    name = _zone_name(zone)
    primary = next(s for s in servers if s.primary)
    out = [
        f"; Managed by Konbit: zone {name} (domain {zone.id}). Knot keeps the serial.",
        f"$ORIGIN {name}.",
        f"$TTL {TTL}",
        f"@ {TTL} IN SOA {_ns(primary)}. hostmaster.{name}. {PLACEHOLDER_SERIAL} {SOA_TIMERS}",
    ]
    seen: set[tuple[str, str, str]] = set()
    addressed = {(r.name, r.type) for r in zone.records}

    def add(line: str, key: tuple[str, str, str]) -> None:
        if key not in seen:
            seen.add(key)
            out.append(line)

    for server in sorted(servers, key=lambda s: (not s.primary, s.ns_name)):
        ns = _ns(server)
        add(f"@ {TTL} IN NS {ns}.", ("@", "NS", f"{ns}."))
    for server in servers:
        owner = _relative(server.ns_name, name)
        if owner is None:
            continue
        kind = "A" if ipaddress.ip_address(_address(server)).version == 4 else "AAAA"
        if (owner, kind) not in addressed:  # the zone's own address for it wins
            add(f"{owner} {TTL} IN {kind} {_address(server)}", (owner, kind, _address(server)))
    for record in zone.records:
        add(_record_line(zone, record), (record.name, record.type, record.data))
    return ("\n".join(out) + "\n").encode()


def _stem(zone: ZoneView) -> str:
    return f"{ZONES}/{zone.id}-{_zone_name(zone)}"


# Knot's main configuration (Debian's, read by knotd and knotc) becomes the include line;
# Debian's own is kept beside it once.
_MAIN = r"""
set -eu
if [ -e "$1" ] && ! head -n 1 "$1" | grep -qxF '# Managed by Konbit.'; then
    cp -p -- "$1" "$1.debian"
fi
printf '%s' "$2" > "$1.konbit-new"
chown root:knot "$1.konbit-new"
chmod 0640 "$1.konbit-new"
mv -f -- "$1.konbit-new" "$1"
"""

# Scripts in the tree (templates/hosts/knot/), run as "sh PATH ARGS": the apply's log
# and a zone's failure reason show their path, not their text.
BIN = {"reload": "reload.sh", "check-zones": "check-zones.sh", "purge": "purge.sh"}


def _bin(name: str) -> str:
    return f"{LIVE}/knot/bin/{name}"


class Knot(Provisioner):
    """Knot DNS on each DNS host: the primary loads the zone files, the secondaries
    transfer from it."""

    name = "knot"
    roles = ("dns",)
    settings = DnsSettings
    # Zones are the panel's own (its domains), served by every DNS host.
    kinds = (ObjectKind("zone", "dns", placement="role", title="DNS zone"),)
    facts = (SETUP,)
    messages = {"fr": {"DNS zone": "zone DNS"}}

    def _me(self, state: DesiredState) -> DnsServerView:
        servers = state.dns_servers
        me = next((s for s in servers if s.id == state.host.id), None)
        me = me or next((s for s in servers if s.name == state.host.name), None)
        if me is None:
            raise ValueError(f"host {state.host.name} is not among the DNS servers given")
        primaries = [s for s in servers if s.primary]
        if len(primaries) != 1:
            raise ValueError(f"the DNS servers name {len(primaries)} primaries; want one")
        return me

    def _zones(self, state: DesiredState) -> list[ZoneView]:
        return [z for z in state.zones if not z.deleting]

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        if not state.dns_servers:
            return []
        me = self._me(state)
        servers = state.dns_servers
        others = [s for s in servers if s is not me]
        primary = next(s for s in servers if s.primary)
        listen = [f"{_address(me)}@53"] + (["127.0.0.1@53"] if _address(me) != "127.0.0.1" else [])
        if me.primary:
            remotes = [
                {"id": f"host-{s.id}", "address": _address(s), "ns_name": s.ns_name}
                for s in sorted(others, key=lambda s: s.id)
            ]
        else:
            remotes = [{"id": "primary", "address": _address(primary), "ns_name": primary.ns_name}]
        files = [
            *(ManagedFile(f"knot/bin/{n}", static(f"knot/{t}")) for n, t in BIN.items()),
            ManagedFile(SERVER_CONF, render("knot/server.conf.j2", listen=listen)),
            ManagedFile(
                "knot/knot.conf",
                render(
                    "knot/knot.conf.j2",
                    primary=me.primary,
                    remotes=remotes,
                    notify=[r["id"] for r in remotes] if me.primary else [],
                    transfer_to=[r["address"] for r in remotes] + ["127.0.0.1", "::1"],
                    primary_address=_address(primary),
                ),
            ),
        ]
        for zone in self._zones(state):
            stem, name = _stem(zone), zone.name
            if me.primary:
                template = "signed" if zone.dnssec else "primary"
                stanza = (
                    f"zone:\n  - domain: {name}\n    template: {template}\n"
                    f"    file: {LIVE}/{stem}.zone\n"
                )
                files.append(ManagedFile(f"{stem}.zone", zone_file(zone, servers)))
            else:
                stanza = f"zone:\n  - domain: {name}\n    template: secondary\n"
            files.append(ManagedFile(f"{stem}.conf", stanza.encode()))
        return files

    def object_of(self, path: str) -> ObjectRef | None:
        match = _ZONE_FILE.fullmatch(path)
        return ("zone", int(match.group(1))) if match else None

    def blame(self, message: str) -> set[ObjectRef]:
        return {("zone", int(a or b)) for a, b in _BLAMED.findall(message)}

    def validate(self, state: DesiredState) -> Sequence[Sequence[str]]:
        if not state.dns_servers:
            return []
        checks: list[list[str]] = [["knotc", "-c", MAIN, "conf-check"]]
        if self._me(state).primary:
            checks.append(["sh", _bin("check-zones")])
        return checks

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        if not state.dns_servers:
            return []
        seen = facts[SETUP]
        steps: list[Step] = []
        if "conf" not in seen:
            steps.append(
                Step(
                    f"{MAIN} includes the konbit configuration",
                    ("sh", "-c", _MAIN, "konbit", MAIN, MAIN_TEXT),
                )
            )
        if "running" not in seen and not any(self.owns(p) for p in changed):
            # Started by the reload when the files change; else after a reboot of a host
            # whose init does not start it, or after a crash.
            steps.append(Step("start Knot", ("sh", _bin("reload"), "zones"), phase="after"))
        gone = self._gone(state, changed)
        if gone:
            steps.append(
                Step(
                    f"purge Knot's data of {', '.join(sorted(gone))}",
                    ("sh", _bin("purge"), *sorted(gone)),
                    phase="after",
                    object_ids=tuple(sorted(set(gone.values()))),
                )
            )
        return steps

    def _gone(self, state: DesiredState, changed: set[str]) -> dict[str, ObjectRef]:
        """Zones whose stanza this reconcile removes and that no other stanza serves."""
        served = {z.name for z in self._zones(state)}
        live = {_stem(z) for z in self._zones(state)}
        gone: dict[str, ObjectRef] = {}
        for path in changed:
            match = _ZONE_FILE.fullmatch(path)
            if match and match.group(3) == "conf" and path[: -len(".conf")] not in live:
                name = match.group(2)
                if name not in served and _FQDN.fullmatch(name):
                    gone[name] = ("zone", int(match.group(1)))
        return gone

    def reload(self, state: DesiredState, changed: set[str]) -> Sequence[Sequence[str]]:
        """A restart when where Knot listens changed, a reload when its configuration did,
        and the primary's changed zones loaded again (see ``reload.sh``)."""
        mine = {p for p in changed if self.owns(p)}
        if not mine:
            return []
        if SERVER_CONF in mine:
            what = "restart"
        elif any(not p.endswith(".zone") for p in mine):
            what = "reload"
        else:
            what = "zones"
        zones = []
        if state.dns_servers and self._me(state).primary:
            zones = sorted(
                z.name
                for z in self._zones(state)
                if f"{_stem(z)}.zone" in mine or f"{_stem(z)}.conf" in mine
            )
        # A secondary's zones come by transfer: a reload is all it needs.
        return [["sh", _bin("reload"), what, *zones]]
