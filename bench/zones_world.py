"""The DNS bench's world: the lab (dns1 primary, dns2 secondary, web1, mail1), the panel as
subprocesses (``konbit serve`` always, ``konbit worker`` only for click-to-resolvable:
the apply cases run the worker's own ``reconcile_host`` in this process), the bulk-seeded
accounts, domains, sites, mailboxes and members' records, and the Knot side of the hosts
(reset, "all zones served", a DNS answer)."""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import datetime as dt
import os
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import KONBIT, Api, chunks, konbit_init, konbit_serve, log, stop, wait_applied
from common import lab_for_bench as common_lab
from pydantic import TypeAdapter
from reconcile_host import sh
from sqlalchemy import Table, func, insert, select, update

import panel.models  # noqa: F401  (every table in the metadata, for the seed)
from panel.core.db import Database
from panel.core.settings import Settings
from panel.testhosts import Lab, TestHost

NS = {"dns1": "ns1.provider.test", "dns2": "ns2.provider.test"}
SOCKET = "/run/knot/knot.sock"
DEBIAN_CONF = "/root/bench-knot.conf"  # the host's own knot.conf, saved once


def lab_for_bench() -> contextlib.AbstractContextManager[Lab]:
    """The bench's lab (``common.lab_for_bench``): its own bridge thbd0, 10.77.52.0/24."""
    return common_lab("d", "10.77.52")


def start_hosts(lab: Lab, pub: str) -> dict[str, TestHost]:
    hosts = {
        "dns1": lab.start("dns1", roles=["dns"], authorized_keys=[pub]),
        "dns2": lab.start("dns2", roles=["dns"], authorized_keys=[pub]),
        "web1": lab.start("web1", roles=["web"], authorized_keys=[pub]),
        "mail1": lab.start("mail1", roles=["mail"], authorized_keys=[pub]),
    }
    for h in hosts.values():
        h.wait_ready(120)
    for name in ("dns1", "dns2"):
        sh(hosts[name], f"[ -e {DEBIAN_CONF} ] || cp -p /etc/knot/knot.conf {DEBIAN_CONF}")
    return hosts


# -- the panel ----------------------------------------------------------------------------


@dataclasses.dataclass
class Panel:
    """``konbit serve`` on one data dir (SQLite) for the whole run; ``konbit worker`` when
    started (click-to-resolvable); the database and settings as the worker opens them."""

    data: Path
    token: str = ""
    base: str = ""
    worker: subprocess.Popen[bytes] | None = None
    serve_pid: int = 0
    _stack: contextlib.ExitStack = dataclasses.field(default_factory=contextlib.ExitStack)
    _worker_log: Any = None

    def __enter__(self) -> Panel:
        self.token = konbit_init(self.data)
        port, proc = self._stack.enter_context(
            konbit_serve(self.data, self.data / "serve.log", None)
        )
        self.base, self.serve_pid = f"http://127.0.0.1:{port}", proc.pid
        self.settings = Settings(data_dir=self.data, database_url=None)
        self.db = Database(self.settings.effective_database_url)
        self._stack.callback(self.db.engine.dispose)
        return self

    def start_worker(self, threads: int = 4) -> int:
        """``konbit worker`` (``--workers``: hosts reconciled at once, 4 by default)."""
        env = {**os.environ, "KONBIT_DATA_DIR": str(self.data)}
        env.pop("KONBIT_DATABASE_URL", None)
        self._worker_log = open(self.data / "worker.log", "ab")  # noqa: SIM115
        self.worker = subprocess.Popen(
            [KONBIT, "worker", "--workers", str(threads)],
            env=env,
            stdout=self._worker_log,
            stderr=subprocess.STDOUT,
        )
        return self.worker.pid

    def stop_worker(self) -> None:
        if self.worker is not None:
            stop([self.worker], 15)
            self.worker = None
            self._worker_log.close()

    def __exit__(self, *exc: object) -> None:
        self.stop_worker()
        self._stack.close()

    @property
    def key_path(self) -> Path:
        return self.data / "ssh" / "id_ed25519"

    def api(self) -> Api:
        return Api(self.base, self.token)


def register(api: Api, hosts: dict[str, TestHost]) -> dict[str, int]:
    """The four hosts through the API (no worker runs yet: nothing is applied)."""
    ids = {}
    for name, roles, settings in (
        ("web1", ["web"], {}),
        ("mail1", ["mail"], {}),
        ("dns1", ["dns"], {"dns_ns_name": NS["dns1"], "dns_primary": True}),
        ("dns2", ["dns"], {"dns_ns_name": NS["dns2"]}),
    ):
        h = hosts[name]
        body = {"name": name, "address": h.address, "host_key": h.host_key, "roles": roles,
                "settings": settings}  # fmt: skip
        ids[name] = int(api.call("POST", "/hosts", body)["id"])
    return ids


# -- the seed -----------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Seeded:
    zones: int
    sites: int
    aliases: int
    mailboxes: int
    dkim_keys: int
    records: int  # members' records
    member_token: str
    click_domain: dict[str, Any]  # the member's domain: id, name
    other_domains: list[dict[str, Any]]  # for "one zone changed" (staff)


def domain_name(a: int) -> str:
    return f"coop{a:05d}.test"


def member_records(a: int) -> list[dict[str, Any]]:
    """A member's own records, as the API's bodies (the seed stores ``data_of`` of each)."""
    out: list[dict[str, Any]] = [
        {"type": "TXT", "name": "@", "text": f"google-site-verification=bench{a:05d}"}
    ]
    if a % 4 == 0:
        out.append({"type": "CNAME", "name": "shop", "target": "shops.example.net."})
    if a % 8 == 1:
        out.append({"type": "A", "name": "vpn", "address": f"198.51.100.{a % 250 + 1}"})
    if a % 10 == 2:
        out.append({"type": "CAA", "name": "@", "flags": 0, "tag": "issue",
                    "value": "letsencrypt.org"})  # fmt: skip
    if a % 25 == 3:
        out.append({"type": "SRV", "name": "_sip._tcp", "priority": 10, "weight": 5,
                    "port": 5060, "target": "sip.example.net."})  # fmt: skip
    return out


def seed(panel: Panel, n: int, ids: dict[str, int]) -> Seeded:
    """``n`` accounts, each with one domain and one site on web1 (www.<domain>, three in
    four with the bare domain as an alias), one in three with two mailboxes on mail1 and
    its active DKIM key (one 2048-bit public key for all: the private part would be on
    mail1; the DKIM round then starts no task), every one with some members' records;
    bulk inserts (core ``insert``, batches), then the DNS hosts bumped.  Sites and
    mailboxes are inserted active and web1 and mail1 are not bumped: they are not
    reconciled (the DNS figures do not need them)."""
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    from panel.accounts import service
    from panel.accounts.models import Membership
    from panel.core.db import Base
    from panel.dns import dkim
    from panel.dns.schemas import RecordIn, data_of

    t = Base.metadata.tables
    now = dt.datetime.now(dt.UTC)
    stamps = {"created_at": now, "updated_at": now, "version": 1}
    active = {**stamps, "status": "active", "status_reason": None}
    record_in: TypeAdapter[Any] = TypeAdapter(RecordIn)
    web_id, mail_id, dns_ids = ids["web1"], ids["mail1"], [ids["dns1"], ids["dns2"]]
    der = (
        rsa.generate_private_key(65537, dkim.MIN_BITS)
        .public_key()
        .public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    )
    public_key, selector = base64.b64encode(der).decode(), dkim.new_selector([], now)

    with panel.db.engine.begin() as conn:

        def base(table: str) -> int:
            return int(conn.scalar(select(func.coalesce(func.max(t[table].c.id), 0))) or 0)

        acc0, dom0, site0, mb0 = base("accounts"), base("domains"), base("sites"), base("mailboxes")
        accounts = range(1, n + 1)
        rows: dict[str, list[dict[str, Any]]] = {
            "accounts": [
                {"id": acc0 + a, "slug": f"coop{a:05d}", "name": f"Coop {a}",
                 "email": f"contact@{domain_name(a)}", "status": "active", "quotas": {}, **stamps}
                for a in accounts
            ],
            "domains": [
                {"id": dom0 + a, "account_id": acc0 + a, "name": domain_name(a), **active}
                for a in accounts
            ],
            "sites": [
                {"id": site0 + a, "account_id": acc0 + a, "domain_id": dom0 + a,
                 "host_id": web_id, "domain": f"www.{domain_name(a)}",
                 "document_root": f"www/www.{domain_name(a)}", "php": "8.2" if a % 2 else None,
                 "https": "off", "https_redirect": True, "enabled": True, **active}
                for a in accounts
            ],
            "site_aliases": [
                {"site_id": site0 + a, "domain_id": dom0 + a, "name": domain_name(a)}
                for a in accounts
                if a % 4
            ],
            "mailboxes": [
                {"id": mb0 + 2 * a - i, "account_id": acc0 + a, "domain_id": dom0 + a,
                 "host_id": mail_id, "address": f"{who}@{domain_name(a)}",
                 "password_hash": "{ARGON2ID}bench", "quota_mb": 1024, "enabled": True,
                 **active}
                for a in accounts
                if a % 3 == 0
                for i, who in ((1, "contact"), (0, "info"))
            ],
            "dkim_keys": [
                {"account_id": acc0 + a, "domain_id": dom0 + a, "host_id": mail_id,
                 "selector": selector, "public_key": public_key, "state": dkim.DkimState.active,
                 "created_at": now, "activated_at": now, "retire_after": None}
                for a in accounts
                if a % 3 == 0
            ],
            "dns_records": [
                {"account_id": acc0 + a, "domain_id": dom0 + a, "name": body["name"],
                 "type": body["type"], "ttl": 3600,
                 "data": data_of(record_in.validate_python(body)),
                 "created_at": now, "updated_at": now}
                for a in accounts
                for body in member_records(a)
            ],
        }  # fmt: skip
        for name, batch_rows in rows.items():
            table: Table = t[name]
            for batch in chunks(batch_rows):
                conn.execute(insert(table), batch)
        hosts = t["hosts"]
        conn.execute(
            update(hosts)
            .where(hosts.c.id.in_(dns_ids))
            .values(desired_generation=hosts.c.desired_generation + 1)
        )
    counts = {name: len(r) for name, r in rows.items()}
    log(f"seeded {counts}")
    with panel.db.session() as session:
        user = service.create_user(session, email="member@coop00001.test", name="Bench member")
        session.add(Membership(account_id=acc0 + 1, user_id=user.id, role="owner"))
        session.flush()
        _, secret = service.create_token(
            session, None, user, name="bench", scopes=["account:coop00001"], expires_at=None
        )
        session.commit()
    return Seeded(
        zones=n,
        sites=counts["sites"],
        aliases=counts["site_aliases"],
        mailboxes=counts["mailboxes"],
        dkim_keys=counts["dkim_keys"],
        records=counts["dns_records"],
        member_token=secret,
        click_domain={"id": dom0 + 1, "name": domain_name(1)},
        other_domains=[{"id": dom0 + a, "name": domain_name(a)} for a in range(2, min(n, 40) + 1)],
    )


def apply_empty(panel: Panel, ids: dict[str, int], names: tuple[str, ...]) -> float:
    """Each host's first reconcile while it has nothing (web1's nginx, mail1's postfix and
    dovecot, the konbit tree): then they are clean, so no worker reconciles them later
    with the 2,000 seeded sites and 1,300 mailboxes."""
    from panel.hosts.reconcile import reconcile_host
    from provisioners.registry import load_plugins

    started = time.perf_counter()
    for name in names:
        report = reconcile_host(panel.db, panel.settings, ids[name], load_plugins(), "bench")
        if report is None or report.result not in ("applied", "noop"):
            raise RuntimeError(f"{name}'s first reconcile: {report}")
        wait_applied(panel.api(), ids[name])
    return time.perf_counter() - started


# -- Knot on the hosts --------------------------------------------------------------------

# Back to what a fresh DNS test host has: Debian's knot.conf, no zone, no journal, no
# timers, no keys, no konbit tree; Knot running.
_RESET = rf"""
set -u
K="knotc -s {SOCKET}"
if $K status >/dev/null 2>&1; then
    $K stop >/dev/null
    while $K status >/dev/null 2>&1; do sleep 0.02; done
fi
rm -rf /etc/konbit /etc/knot/knot.conf.debian
cat {DEBIAN_CONF} > /etc/knot/knot.conf
rm -rf /var/lib/knot/*
systemctl start knot >/dev/null
until $K status >/dev/null 2>&1; do sleep 0.02; done
"""


def reset(*hosts: TestHost) -> None:
    for h in hosts:
        sh(h, _RESET, timeout=60)


# Until Knot has a serial for "$1" zones (loaded on a primary, transferred on a secondary);
# one poll costs ~13 ms of the host's CPU at 2,000 zones.
_SERVED = f"""
until [ "$(knotc -s {SOCKET} zone-status 2>/dev/null | grep -c 'serial: [0-9]')" -ge "$1" ]; do
    sleep 0.05
done
"""


def wait_served(host: TestHost, n: int, timeout: float = 300) -> None:
    """Until ``n`` zones have a serial on the host (polled on the host every 50 ms)."""
    sh(host, _SERVED, str(n), timeout=timeout)


class Watch:
    """``fn()`` in a thread, started at once: ``result()`` waits for it and gives its
    return value and when it returned (``perf_counter``)."""

    def __init__(self, fn: Callable[[], Any]) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self.done_at = 0.0

        def run() -> None:
            try:
                self._value = fn()
            except BaseException as exc:
                self._error = exc
            self.done_at = time.perf_counter()

        self._thread = threading.Thread(target=run, daemon=True)
        self._thread.start()

    def result(self, timeout: float = 300) -> Any:
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise RuntimeError(f"a wait did not end in {timeout} s")
        if self._error is not None:
            raise self._error
        return self._value


def answer(address: str, name: str, rdtype: str = "A", timeout: float = 0.5) -> set[str]:
    """One UDP query over port 53 (dnspython): the data of the answer's RRset.  Imported
    here."""
    import dns.exception
    import dns.message
    import dns.query
    import dns.rdatatype

    query = dns.message.make_query(name, rdtype)
    try:
        response = dns.query.udp(query, address, timeout=timeout)
    except (dns.exception.Timeout, OSError):
        return set()
    want = dns.rdatatype.from_text(rdtype)
    return {rd.to_text() for rrset in response.answer if rrset.rdtype == want for rd in rrset}


def wait_answer(
    addresses: dict[str, str],
    name: str,
    value: str,
    since: float,
    timeout: float = 30,
    poll: float = 0.015,
) -> dict[str, float]:
    """Poll every server (every ``poll`` s) until each answers ``name`` A ``value``:
    seconds from ``since`` (a ``perf_counter``) when each first did."""
    seen: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while len(seen) < len(addresses):
        for server, address in addresses.items():
            if server not in seen and value in answer(address, name):
                seen[server] = time.perf_counter() - since
        if len(seen) < len(addresses):
            if time.perf_counter() > deadline:
                missing = sorted(set(addresses) - set(seen))
                raise RuntimeError(f"{name} A {value}: not answered by {missing} in {timeout} s")
            time.sleep(poll)
    return seen


def proc_cpu(pid: int) -> float:
    """CPU seconds of one process (every thread) and of the children it reaped."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return sum(int(x) for x in fields[11:15]) / os.sysconf("SC_CLK_TCK")
