"""Lists hosts: Mailman 3 core, driven through its REST API over an SSH tunnel.

Mailman keeps its lists in its own database, so there are no list files to render: the
plugin sets postfix up once to hand list mail to Mailman over LMTP (Mailman writes the
postfix maps itself) and to send list mail out through the host's relay, then converges
Mailman through REST.  The REST port stays on the host's loopback; the panel reaches it
through a ``direct-tcpip`` channel of the reconcile's own SSH connection, with the
credentials it reads from the host's ``mailman.cfg`` (never logged, never stored).

Reads go through collection endpoints (every list, every membership: two requests
whatever the number of lists); list settings are written only when they differ from what
the plugin last applied, remembered on the host in ``STATE`` with the roster entries the
panel put there.  Only those entries are the panel's to remove: people who joined or left
by themselves (mail commands, web pages) stay as they chose, and a member who left is not
subscribed again behind their back.  Members the panel adds are pre-verified, pre-confirmed
and pre-approved (no confirmation mail).  A reconcile where nothing differs writes nothing.
"""

from __future__ import annotations

import base64
import configparser
import datetime as dt
import hashlib
import io
import json
import re
import shlex
import tarfile
import time
import urllib.parse
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, Field

from provisioners.api import (
    DesiredState,
    Fact,
    Facts,
    Failure,
    MailingListView,
    ManagedFile,
    Metric,
    ObjectKind,
    ObjectRef,
    Provisioner,
    Runner,
    Sample,
    Step,
    TransportError,
    TunnelRefused,
)
from provisioners.api.values import HostAddress

MAILMAN_CFG = "/etc/mailman3/mailman.cfg"
MAILMAN_VAR = "/var/lib/mailman3"
MAPS = f"{MAILMAN_VAR}/data"
STATE = "/var/lib/konbit/lists/applied.json"
ARCHIVE_DIR = "/var/lib/konbit/archive/lists"
REST_WAIT = 20.0  # Mailman's REST runner answers ~10 s after a (re)start
PAGE = 5000

# Every value already matched the panel's address pattern; checked again here because a
# list address becomes a URL path and a directory name on the host.
_ADDRESS = re.compile(r"[a-z0-9](?:[a-z0-9._-]{0,62}[a-z0-9])?@[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")

POLICY = {"open": "open", "confirm": "confirm", "moderate": "confirm_then_moderate"}
REPLY_TO = {"sender": "no_munging", "list": "point_to_list"}
# Panel setting -> Mailman list attribute (values pass as JSON data, never as text).
SETTINGS = {
    "display_name": "display_name",
    "description": "description",
    "subject_prefix": "subject_prefix",
    "archive_policy": "archive_policy",
    "max_message_size": "max_message_size",
    "advertised": "advertised",
    "send_welcome_message": "send_welcome_message",
}


def list_id(mlist: MailingListView) -> str:
    """Mailman's id of a list: ``local.domain``."""
    return f"{mlist.local_part}.{mlist.domain}"


def postfix_settings(relay: str | None) -> dict[str, str]:
    """What main.cf must say: list domains relayed to Mailman's LMTP, unknown list
    addresses refused at SMTP time, list mail out through the relay."""
    lmtp = f"hash:{MAPS}/postfix_lmtp"
    return {
        "transport_maps": lmtp,
        "local_recipient_maps": f"proxy:unix:passwd.byname $alias_maps {lmtp}",
        "relay_domains": f"hash:{MAPS}/postfix_domains",
        "relay_recipient_maps": lmtp,
        "recipient_delimiter": "+",
        "owner_request_special": "no",
        "unknown_local_recipient_reject_code": "550",
        "relayhost": f"[{relay}]:25" if relay else "",
    }


def mailman_config(mlist: MailingListView) -> dict[str, Any]:
    """The list attributes the panel decides, in Mailman's names and values."""
    config: dict[str, Any] = {"subscription_policy": POLICY[mlist.policy]}
    for key, attr in SETTINGS.items():
        if mlist.settings.get(key) is not None:
            config[attr] = mlist.settings[key]
    if mlist.settings.get("reply_to") is not None:
        config["reply_goes_to_list"] = REPLY_TO[str(mlist.settings["reply_to"])]
    return config


def digest(config: Mapping[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:20]


class RestError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class MailmanRest:
    """Mailman's REST API (3.1) through the reconcile's SSH connection."""

    conn: Runner
    port: int
    authorization: str

    def call(self, method: str, path: str, data: Mapping[str, Any] | None = None) -> Any:
        """One request; waits a little for a REST runner still starting."""
        body = json.dumps(data).encode() if data is not None else b""
        headers = {"Authorization": self.authorization, "Accept": "application/json"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        deadline = time.monotonic() + REST_WAIT
        while True:
            try:
                response = self.conn.http(
                    self.port, method, f"/3.1/{path}", headers=headers, body=body
                )
                break
            except TunnelRefused:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.5)
        if response.status >= 300:
            raise RestError(
                response.status,
                f"{method} /3.1/{path.split('?', maxsplit=1)[0]}: HTTP {response.status} "
                f"{response.text(300).strip()}",
            )
        return response.json()

    def entries(self, path: str) -> list[dict[str, Any]]:
        """Every entry of a collection, in pages of PAGE (one request for most hosts)."""
        out: list[dict[str, Any]] = []
        sep = "&" if "?" in path else "?"
        page = 1
        while True:
            got = self.call("GET", f"{path}{sep}count={PAGE}&page={page}") or {}
            out += got.get("entries", [])
            if len(out) >= int(got.get("total_size", 0)) or not got.get("entries"):
                return out
            page += 1


def read_credentials(conn: Runner) -> tuple[int, str]:
    """REST port and Basic credentials from the host's own mailman.cfg."""
    result = conn.run(["cat", "--", MAILMAN_CFG])
    if not result.ok:
        raise Failure(f"cannot read {MAILMAN_CFG}: {result.error_text(300).strip()}")
    parser = configparser.ConfigParser(interpolation=None, strict=False)
    try:
        parser.read_string(result.text())
        web = parser["webservice"]
        user, password = web["admin_user"], web["admin_pass"]
        port = int(web.get("port", "8001"))
    except (configparser.Error, KeyError, ValueError):
        raise Failure(
            f"{MAILMAN_CFG} has no usable [webservice] admin_user/admin_pass/port"
        ) from None
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return port, f"Basic {token}"


def _parts(text: str) -> dict[str, str]:
    """The fact output split at its ``-- name`` lines."""
    out: dict[str, list[str]] = {}
    current = ""
    for line in text.splitlines():
        if line.startswith("-- "):
            current = line[3:].strip()
            out.setdefault(current, [])
        else:
            out.setdefault(current, []).append(line)
    return {k: "\n".join(v) for k, v in out.items()}


# Postfix's settings for Mailman, its groups, Mailman's maps, and what the panel applied.
MAILMAN_STATE = Fact(
    "mailman",
    f'echo "-- postconf"; postconf {" ".join(postfix_settings(None))} 2>/dev/null\n'
    'echo "-- groups"; id -nG postfix 2>/dev/null\n'
    f'echo "-- maps"; for m in postfix_lmtp postfix_domains; do '
    f'[ -e "{MAPS}/$m.db" ] && echo "$m"; done\n'
    f'echo "-- applied"; cat {STATE} 2>/dev/null; true',
    _parts,
)


class ListsSettings(BaseModel):
    """A lists host's settings."""

    relay_host: HostAddress | None = Field(
        default=None,
        description="lists hosts: the smarthost (port 25) that carries list mail out; "
        "none means direct delivery by MX",
    )


class Mailman(Provisioner):
    """Mailman 3 lists: domains, lists, owners, moderators, members and settings."""

    name = "mailman"
    roles = ("lists",)
    settings = ListsSettings
    kinds = (ObjectKind("list", "lists", title="mailing list"),)
    metrics = (Metric("list_archive_bytes", "lists", storage_of="list"),)
    facts = (MAILMAN_STATE,)

    def render(self, state: DesiredState) -> Sequence[ManagedFile]:
        return []  # Mailman keeps lists in its database; postfix is set by steps

    def usage_script(self, state: DesiredState, cursor: Mapping[str, Any]) -> str | None:
        """Each list's stored data and archives (any archiver's directory named after the
        list), in one ``du`` per list set: what a list costs in disk."""
        live = [m for m in state.lists if not m.deleting]
        if not live:
            return None
        spec = "".join(f"{m.id}\t{list_id(m)}\t{m.address}\n" for m in live)
        return f"printf '%s' {shlex.quote(spec)} | sh -c {shlex.quote(_LIST_DISK)}"

    def parse_usage(
        self, state: DesiredState, output: str, cursor: Mapping[str, Any]
    ) -> tuple[list[Sample], dict[str, Any]]:
        samples = []
        for line in output.splitlines():
            list_pk, _, size = line.partition("\t")
            if list_pk.isdigit() and size.isdigit():
                samples.append(Sample(("list", int(list_pk)), "list_archive_bytes", int(size)))
        return samples, dict(cursor)

    def steps(self, state: DesiredState, facts: Facts, changed: set[str]) -> Sequence[Step]:
        """Postfix set up for Mailman, only where the host differs."""
        parts = facts[MAILMAN_STATE]
        steps: list[Step] = []
        if "list" not in parts.get("groups", "").split():
            # Mailman writes its maps as user list, mode 0640.
            steps.append(
                Step("postfix may read Mailman's maps", ("usermod", "-a", "-G", "list", "postfix"))
            )
        if set(parts.get("maps", "").split()) != {"postfix_lmtp", "postfix_domains"}:
            steps.append(
                Step(
                    "Mailman writes its postfix maps",
                    ("runuser", "-u", "list", "--", "mailman", "-C", MAILMAN_CFG, "aliases"),
                )
            )
        want = postfix_settings(state.host.settings_as(ListsSettings).relay_host)
        have: dict[str, str] = {}
        for line in parts.get("postconf", "").splitlines():
            key, sep, value = line.partition(" = ")
            if sep:
                have[key.strip()] = value.strip()
            elif line.endswith(" ="):
                have[line[:-2].strip()] = ""
        differ = {k: v for k, v in want.items() if have.get(k) != v}
        if differ or steps:
            if differ:
                steps.append(
                    Step(
                        "postfix hands list mail to Mailman and sends through the relay",
                        ("postconf", "-e", *(f"{k}={v}" for k, v in differ.items())),
                    )
                )
            steps.append(Step("reload postfix", ("systemctl", "reload-or-restart", "postfix")))
        return steps

    def converge(self, conn: Runner, state: DesiredState, facts: Facts) -> list[str]:
        lists = [m for m in state.lists if ("list", m.id) not in state.failed]
        if not lists:
            return []
        for mlist in lists:
            if not _ADDRESS.fullmatch(mlist.address):
                raise Failure("refused list address", {("list", mlist.id): "invalid address"})
        try:
            port, authorization = read_credentials(conn)
            rest = MailmanRest(conn, port, authorization)
            return _Converge(rest, conn, state, facts, lists).run()
        except TunnelRefused as exc:
            raise Failure(f"Mailman's REST API does not answer: {exc}") from None
        except RestError as exc:
            raise Failure(f"Mailman's REST API: {exc}") from None
        except TransportError as exc:
            raise Failure(str(exc)) from None


class _Converge:
    """One pass over the host's lists: two collection reads, then only the writes needed."""

    def __init__(
        self,
        rest: MailmanRest,
        conn: Runner,
        state: DesiredState,
        facts: Facts,
        lists: list[MailingListView],
    ) -> None:
        self.rest = rest
        self.conn = conn
        self.lists = lists
        raw = facts[MAILMAN_STATE].get("applied", "").strip()
        try:
            loaded = json.loads(raw) if raw else {}
        except ValueError:
            loaded = {}
        # list id -> {"config": digest applied, "roster": ["role:email", ...] it put there}
        self.applied: dict[str, dict[str, Any]] = {
            k: v
            for k, v in (loaded if isinstance(loaded, dict) else {}).items()
            if isinstance(v, dict)
        }
        self.actions: list[str] = []
        self.failures: dict[ObjectRef, str] = {}
        self.domains: set[str] | None = None

    def run(self) -> list[str]:
        existing = {e["list_id"] for e in self.rest.entries("lists")}
        fields = "&".join(f"fields={f}" for f in ("list_id", "email", "role", "member_id"))
        rosters: dict[str, dict[tuple[str, str], str]] = {}
        for e in self.rest.entries(f"members?{fields}"):
            if e.get("role") in ("member", "owner", "moderator"):
                key = (str(e["email"]).lower(), str(e["role"]))
                rosters.setdefault(e["list_id"], {})[key] = str(e["member_id"])
        applied = dict(self.applied)
        for mlist in self.lists:
            lid = list_id(mlist)
            try:
                if mlist.deleting:
                    if lid in existing:
                        self._delete(mlist, rosters.get(lid, {}))
                    applied.pop(lid, None)
                else:
                    applied[lid] = self._ensure(mlist, lid in existing, rosters.get(lid, {}))
            except RestError as exc:
                self.failures[("list", mlist.id)] = str(exc)
        if applied != self.applied:
            self._remember(applied)
        if self.failures:
            raise Failure(
                f"{len(self.failures)} list(s) failed: " + "; ".join(self.failures.values()),
                self.failures,
            )
        return self.actions

    def _ensure(
        self, mlist: MailingListView, exists: bool, roster: dict[tuple[str, str], str]
    ) -> dict[str, Any]:
        """The list as the panel says, its roster changed only where the panel's own
        roster changed: people who joined or left by themselves (mail commands, web
        pages) stay as they chose."""
        lid = list_id(mlist)
        before = self.applied.get(lid, {})
        if not exists:
            if self.domains is None:
                self.domains = {e["mail_host"] for e in self.rest.entries("domains")}
            if mlist.domain not in self.domains:
                self.rest.call("POST", "domains", {"mail_host": mlist.domain})
                self.domains.add(mlist.domain)
                self.actions.append(f"created domain {mlist.domain}")
            self.rest.call("POST", "lists", {"fqdn_listname": mlist.address})
            self.actions.append(f"created list {mlist.address}")
        config = mailman_config(mlist)
        wanted = digest(config)
        if not exists or before.get("config") != wanted:
            self.rest.call("PATCH", f"lists/{_q(lid)}/config", config)
            self.actions.append(f"configured {mlist.address}")
        desired = {(o.lower(), "owner") for o in mlist.owners}
        desired |= {(m.email.lower(), m.role) for m in mlist.members}
        managed = {
            (str(e).partition(":")[2], str(e).partition(":")[0]) for e in before.get("roster", [])
        }
        if not exists:
            managed = set()
        added = 0
        for email, role in sorted(desired - managed - set(roster)):
            try:
                self.rest.call(
                    "POST",
                    "members",
                    {
                        "list_id": lid,
                        "subscriber": email,
                        "role": role,
                        # The list's managers vouched for the address: no confirmation.
                        "pre_verified": True,
                        "pre_confirmed": True,
                        "pre_approved": True,
                    },
                )
            except RestError as exc:
                if exc.status != 409:  # already subscribed: what we wanted
                    raise
            added += 1
        if added:
            self.actions.append(f"subscribed {added} to {mlist.address}")
        gone = (managed - desired) & set(roster)
        members = sorted(email for email, role in gone if role == "member")
        if members:
            self.rest.call("DELETE", f"lists/{_q(lid)}/roster/member", {"emails": members})
        for email, role in sorted(gone):
            if role != "member":
                self.rest.call("DELETE", f"members/{_q(roster[(email, role)])}")
        if gone:
            self.actions.append(f"unsubscribed {len(gone)} from {mlist.address}")
        return {"config": wanted, "roster": sorted(f"{r}:{e}" for e, r in desired)}

    def _delete(self, mlist: MailingListView, roster: dict[tuple[str, str], str]) -> None:
        """Roster and settings into the host's archive (with Mailman's own list data and
        any archiver's files), then the list goes."""
        lid = list_id(mlist)
        config = self.rest.call("GET", f"lists/{_q(lid)}/config")
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        dest = f"{ARCHIVE_DIR}/{mlist.address}-{stamp}"
        csv = "email,role\n" + "".join(f"{e},{r}\n" for e, r in sorted(roster))
        bundle = _tar(
            {
                "roster.csv": csv.encode(),
                "config.json": json.dumps(config, indent=2, sort_keys=True).encode() + b"\n",
            }
        )
        result = self.conn.script(_ARCHIVE, dest, lid, mlist.address, stdin=bundle)
        if not result.ok:
            raise RestError(0, f"archiving {mlist.address}: {result.error_text(300).strip()}")
        self.rest.call("DELETE", f"lists/{_q(lid)}")
        self.actions.append(f"archived {mlist.address} to {dest} and deleted it")

    def _remember(self, applied: dict[str, dict[str, Any]]) -> None:
        data = json.dumps(applied, sort_keys=True, separators=(",", ":")).encode() + b"\n"
        result = self.conn.script(_REMEMBER, STATE, stdin=data)
        if not result.ok:
            raise Failure(f"writing {STATE}: {result.error_text(300).strip()}")


def _q(segment: str) -> str:
    return urllib.parse.quote(segment, safe="@")


def _tar(files: Mapping[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, content in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            info.mode = 0o600
            info.mtime = int(time.time())
            tar.addfile(info, io.BytesIO(content))
    return buf.getvalue()


# $1 archive dir, $2 list id, $3 list address (both validated); the tar comes on stdin.
_ARCHIVE = r"""
set -eu
umask 077
mkdir -p -- "$1"
tar -x -C "$1" --no-same-owner -f -
data="/var/lib/mailman3/lists/$2"
if [ -d "$data" ]; then cp -a -- "$data" "$1/list-data"; fi
for a in /var/lib/mailman3/archives/*/; do
    for name in "$2" "$3"; do
        if [ -e "$a$name" ]; then
            mkdir -p -- "$1/archives/$(basename "$a")"
            cp -a -- "$a$name" "$1/archives/$(basename "$a")/"
        fi
    done
done
"""

# stdin: "<id>\t<list id>\t<address>" lines (validated); out: "<id>\t<bytes>".
_LIST_DISK = r"""
while IFS="$(printf '\t')" read -r pk lid address; do
    set -- "/var/lib/mailman3/lists/$lid"
    for a in /var/lib/mailman3/archives/*/; do
        set -- "$@" "$a$lid" "$a$address"
    done
    total=0
    for path in "$@"; do
        [ -e "$path" ] || continue
        bytes=$(du -s -B1 -- "$path" | cut -f1)
        total=$((total + bytes))
    done
    printf '%s\t%s\n' "$pk" "$total"
done
"""

_REMEMBER = r"""
set -eu
mkdir -p -- "$(dirname "$1")"
cat > "$1.new"
mv -f -- "$1.new" "$1"
"""
