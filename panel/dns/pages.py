"""A domain's DNS zone in the panel: how it is served (the name servers to give the
registrar, whether the servers serve the latest records, DNSSEC, or "managed elsewhere"),
every record of it (Konbit's, read-only, with where each comes from, and the member's own)
and the form that adds, replaces or deletes a member's record.

The page reads the zone as the API answers it (``panel.dns.api``); every record write goes
through ``panel.dns.service`` (its checks, its audit), so a refusal is the API's own,
shown at the field it names (``A.address`` is the form's ``address``) or above the form."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, get_origin

from fastapi import APIRouter, Response
from pydantic import BaseModel, TypeAdapter
from sqlalchemy import select
from starlette.datastructures import FormData

from panel.core.objects import get_visible, get_writable
from panel.dns import api as dns_api
from panel.dns import service, zones
from panel.dns.models import DnsRecord
from panel.dns.schemas import RecordIn, RecordOut, ZoneOut, ZonePatch
from panel.domains.models import Domain
from panel.sites.models import Site
from panel.web import i18n
from panel.web.core import (
    CsrfForm,
    FormErrors,
    PageRoute,
    Web,
    WebDep,
    attempt_form,
    checked,
    redirect,
    render,
    render_flashed,
    text,
)
from panel.web.i18n import _

# Words that reach the templates as data: the DNS tasks' kinds (a task page names them).
WORDS = (_("dkim-key"), _("dkim-drop"))

router = APIRouter(route_class=PageRoute, include_in_schema=False)

T = TypeVar("T")

RECORD = TypeAdapter(RecordIn)
# Each record type's schema, by its tag ("A": ARecord...), in the order the select offers.
TYPES: dict[str, type[BaseModel]] = {
    get_args(model.model_fields["type"].annotation)[0]: model
    for model in get_args(get_args(RecordIn)[0])
}


@dataclass(frozen=True)
class Input:
    """One input of the record form: shared by the types that have a field of its name
    (``target``: CNAME and SRV), so that a refusal at ``SRV.target`` is shown at it."""

    name: str
    label: str
    hint: str
    numeric: bool = False
    choices: tuple[str, ...] = ()
    types: tuple[str, ...] = ()

    @property
    def options(self) -> list[tuple[str, str]]:
        return [(c, c) for c in self.choices]


def _input(name: str, label: str, hint: str = "") -> Input:
    """An input of the form, its kind and its types read from the schemas."""
    types = tuple(t for t, model in TYPES.items() if name in model.model_fields)
    found = next(TYPES[t].model_fields[name] for t in types)
    annotation = found.annotation
    literal = get_args(annotation) if get_origin(annotation) is Literal else ()
    numeric = annotation is int or (bool(literal) and all(isinstance(v, int) for v in literal))
    return Input(name, label, hint, numeric, tuple(str(v) for v in literal), types)


INPUTS = (
    _input("name", _("Name"), _("'@' for the domain itself, or a name under it like 'www'.")),
    _input("ttl", _("TTL (seconds)"), _("How long resolvers keep it: 60 to 86400.")),
    _input("address", _("Address"), _("An IPv4 address for A, an IPv6 address for AAAA.")),
    _input("target", _("Target host"), _("The host name it points at, like pages.example.net.")),
    _input("preference", _("Preference"), _("The lowest is tried first.")),
    _input(
        "exchange", _("Mail server"), _("The host that receives the mail, like mx.example.net.")
    ),
    _input(
        "text", _("Text"), _("At most 2048 printable characters, no double quote nor backslash.")
    ),
    _input("priority", _("Priority"), _("The lowest is tried first.")),
    _input("weight", _("Weight"), _("Shares the load among targets of one priority.")),
    _input("port", _("Port")),
    _input("flags", _("Flags"), _("128: a CA that does not understand the tag must refuse.")),
    _input("tag", _("Tag"), _("issue, issuewild (wildcard certificates) or iodef (reports).")),
    _input("value", _("Value"), _("A CA's domain like letsencrypt.org; for iodef a mailto: URL.")),
)
NAMES = frozenset({"type", *(i.name for i in INPUTS)})
DEFAULTS = {"type": "A", "ttl": "3600", "preference": "10", "priority": "0", "weight": "0",
            "flags": "0", "tag": "issue"}  # fmt: skip

# Where a derived record comes from, for the page's language ("site 12" is the site's name).
SOURCES = {
    "dns servers": _("name servers"),
    "mail host": _("the mail host's address"),
    "list host": _("the lists host's address"),
    "mail": _("mail"),
    "list": _("mailing lists"),
    "spf": _("SPF (mail)"),
    "dmarc": _("DMARC (mail)"),
    "dkim": _("DKIM key (mail)"),
    "acme": _("ACME challenge (while a certificate is ordered)"),
    "member": _("added by the account"),
}
# What each status of ``ZoneOut`` means for the member.
STATUS_TEXT = {
    "active": _("Every DNS server serves the latest records."),
    "pending": _("A DNS server has not applied the latest change yet; it does within moments."),
    "failed": _("A DNS server's last apply failed: it keeps serving the previous records."),
    "none": _("The provider has no DNS server yet."),
    "external": _("Konbit's DNS servers do not serve this zone."),
}
# The zone's statuses (``ZoneOut.status``), in words.
STATUS_WORD = {
    "active": _("active"),
    "pending": _("pending"),
    "failed": _("failed"),
    "none": _("no DNS server"),
    "external": _("managed elsewhere"),
}

# The DNS checks' and services' messages, in the page's language (``translate_problem``).
PROBLEMS = [
    (
        r"^must be '@' \(the domain itself\) or a name under it, like 'www' or '_dmarc': "
        r"letters, digits, '-' and '_' in labels of 1-63, joined by '\.'$",
        _(
            "must be '@' (the domain itself) or a name under it, like 'www' or '_dmarc': "
            "letters, digits, '-' and '_' in labels of 1-63, joined by '.'"
        ),
    ),
    (
        r"^must be 1-2048 printable ASCII characters, without double quotes or backslashes$",
        _("must be 1-2048 printable ASCII characters, without double quotes or backslashes"),
    ),
    (
        r"^must be 1-200 letters, digits or \. : / @ ; = _ \+ - \(a CA's domain, or a mailto: "
        r"or https: URL\)$",
        _(
            "must be 1-200 letters, digits or . : / @ ; = _ + - (a CA's domain, or a mailto: "
            "or https: URL)"
        ),
    ),
    (r"^Input is not a valid IPv4 address$", _("must be an IPv4 address, like 192.0.2.10")),
    (r"^Input is not a valid IPv6 address$", _("must be an IPv6 address, like 2001:db8::10")),
    (r"^Input should be 0 or 128$", _("must be 0 or 128")),
    (
        r"^Input tag '.*' found using 'type' does not match any of the expected tags: "
        r"(?P<tags>.+)$",
        _("must be one of: %(tags)s"),
    ),
    (
        r"^Unable to extract tag using discriminator 'type'$",
        _("Field required"),
    ),
    (
        r"^(?P<name>\S+) is longer than (?P<n>\d+) characters$",
        _("%(name)s is longer than %(n)s characters"),
    ),
    (
        r"^a CNAME cannot be at the domain itself; use A/AAAA records$",
        _("a CNAME cannot be at the domain itself; use A/AAAA records"),
    ),
    (
        r"^an SRV record's name starts with _service\._proto, like _sip\._tcp$",
        _("an SRV record's name starts with _service._proto, like _sip._tcp"),
    ),
    (
        r"^(?P<name>\S+) is a site on this provider \((?P<source>[^)]+)\): its address records "
        r"are Konbit's\. Remove the site or its alias first, or use another name\.$",
        _(
            "%(name)s is a site on this provider (%(source)s): its address records are "
            "Konbit's. Remove the site or its alias first, or use another name."
        ),
    ),
    (
        r"^(?P<name>\S+) already has (?P<type>[A-Z]+) records; a CNAME must be alone$",
        _("%(name)s already has %(type)s records; a CNAME must be alone"),
    ),
    (
        r"^(?P<name>\S+) is a CNAME to (?P<target>\S+); remove it first$",
        _("%(name)s is a CNAME to %(target)s; remove it first"),
    ),
    (
        r"^(?P<name>\S+) already has this (?P<type>[A-Z]+) record$",
        _("%(name)s already has this %(type)s record"),
    ),
    (
        r"^(?P<name>\S+) has (?P<max>\d+) records, the most a zone may$",
        _("%(name)s has %(max)s records, the most a zone may"),
    ),
]
i18n.add_problems(PROBLEMS)


# -- reading the form, and a record back into it --------------------------------------------


def _body(form: FormData) -> dict[str, Any]:
    """The chosen type's fields only (an empty one takes the schema's default); the other
    types' inputs are ignored.  Whole numbers go as numbers (a flag is ``Literal[0, 128]``)."""
    rtype = text(form, "type")
    model = TYPES.get(rtype)
    body: dict[str, Any] = {"type": rtype}
    for i in INPUTS:
        value = text(form, i.name)
        if model is None or i.name not in model.model_fields or value == "":
            continue
        body[i.name] = int(value) if i.numeric and value.isdigit() else value
    return body


def _values(form: FormData) -> dict[str, str]:
    return {name: text(form, name) for name in NAMES}


def _unquote(data: str) -> str:
    """A TXT's text from its zone-file form: quoted strings, which hold no quote."""
    return "".join(re.findall(r'"([^"]*)"', data))


def values_of(row: DnsRecord) -> dict[str, str]:
    """A member's record as the form's inputs (its data is the zone-file form that
    ``schemas.data_of`` built from them)."""
    values = {**DEFAULTS, "type": row.type, "name": row.name, "ttl": str(row.ttl)}
    data = row.data
    if row.type in ("A", "AAAA"):
        values["address"] = data
    elif row.type == "CNAME":
        values["target"] = data.removesuffix(".")
    elif row.type == "MX":
        preference, exchange = data.split(" ", 1)
        values |= {"preference": preference, "exchange": exchange.removesuffix(".")}
    elif row.type == "TXT":
        values["text"] = _unquote(data)
    elif row.type == "SRV":
        priority, weight, port, target = data.split(" ", 3)
        values |= {"priority": priority, "weight": weight, "port": port,
                   "target": target.removesuffix(".")}  # fmt: skip
    elif row.type == "CAA":
        flags, tag, value = data.split(" ", 2)
        values |= {"flags": flags, "tag": tag, "value": value.strip('"')}
    return values


def _write(web: Web, write: Callable[[], T]) -> T | tuple[int, FormErrors]:
    """One record write through the service, committed (``attempt_form``)."""

    def committed() -> T:
        done = write()
        web.db.commit()
        return done

    return attempt_form(web, committed, NAMES)


# -- the zone's page --------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """A record of the table: where it comes from, and a link to that when there is one."""

    record: RecordOut
    source: str
    link: str | None


def _rows(web: Web, records: list[RecordOut]) -> list[Row]:
    site_ids = {int(r.source.split()[1]) for r in records if re.fullmatch(r"site \d+", r.source)}
    found = web.db.execute(select(Site.id, Site.domain).where(Site.id.in_(site_ids)))
    sites: dict[int, str] = {site_id: name for site_id, name in found}
    out = []
    for r in records:
        m = re.fullmatch(r"site (\d+)", r.source)
        if m and int(m.group(1)) in sites:
            site_id = int(m.group(1))
            label = web._("site %(name)s") % {"name": sites[site_id]}
            out.append(Row(r, label, f"/sites/{site_id}"))
        else:
            out.append(Row(r, web._(SOURCES[r.source]) if r.source in SOURCES else r.source, None))
    return out


def _zone_page(
    web: Web,
    domain: Domain,
    status: int = 200,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    zone: ZoneOut = dns_api.get_zone(domain.id, web.db, web.p)
    records = dns_api.list_records(domain.id, web.db, web.p).items
    return render_flashed(
        web,
        "panel/dns/zone.html",
        status,
        domain=domain,
        zone=zone,
        status_word=web._(STATUS_WORD.get(zone.status, zone.status)),
        status_text=web._(STATUS_TEXT[zone.status]) if zone.status in STATUS_TEXT else "",
        rows=_rows(web, records),
        writable=web.can_write(domain.account_id) and domain.status != "deleting",
        **_form_context(errors, values or DEFAULTS),
    )


def _form_context(errors: FormErrors | None, values: dict[str, str]) -> dict[str, Any]:
    return {
        "types": [(t, t) for t in TYPES],
        "inputs": INPUTS,
        "errors": errors or FormErrors(),
        "values": {name: values.get(name, "") for name in NAMES},
    }


@router.get("/domains/{domain_id}/dns")
def zone_page(domain_id: int, web: WebDep) -> Response:
    return _zone_page(web, get_visible(web.db, web.p, Domain, domain_id))


@router.post("/domains/{domain_id}/dns")
def zone_settings(domain_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Serve the zone here or not, sign it or not: the API's ``PATCH /domains/{id}/dns``."""
    body = ZonePatch(hosted=not checked(form, "external"), dnssec=checked(form, "dnssec"))
    zone = dns_api.patch_zone(domain_id, body, web.db, web.p)
    said = (
        _("DNS settings of %(name)s saved: its DNS servers serve the zone.")
        if zone.hosted
        else _("DNS settings of %(name)s saved: set its records at your DNS provider.")
    )
    return redirect(f"/domains/{domain_id}/dns", web._(said) % {"name": zone.name})


@router.post("/domains/{domain_id}/records")
def add_record(domain_id: int, web: WebDep, form: CsrfForm) -> Response:
    domain = get_writable(web.db, web.p, Domain, domain_id)
    row = _write(
        web, lambda: service.create(web.db, web.p, domain, RECORD.validate_python(_body(form)))
    )
    if isinstance(row, tuple):
        status, errors = row
        return _zone_page(web, domain, status, errors, _values(form))
    return redirect(
        f"/domains/{domain.id}/dns",
        web._("Record %(name)s %(type)s added.") % {"name": row.name, "type": row.type},
    )


# -- one member's record: replace it, delete it -------------------------------------------------


def _record_page(
    web: Web,
    row: DnsRecord,
    status: int = 200,
    errors: FormErrors | None = None,
    values: dict[str, str] | None = None,
) -> Response:
    domain = web.db.get_one(Domain, row.domain_id)
    return render(
        web,
        "panel/dns/record.html",
        status,
        domain=domain,
        record=row,
        fqdn=zones.fqdn(row.name, domain.name),
        writable=web.can_write(domain.account_id) and domain.status != "deleting",
        **_form_context(errors, values or values_of(row)),
    )


@router.get("/dns-records/{record_id}")
def record_page(record_id: int, web: WebDep) -> Response:
    return _record_page(web, get_visible(web.db, web.p, DnsRecord, record_id))


@router.post("/dns-records/{record_id}")
def replace_record(record_id: int, web: WebDep, form: CsrfForm) -> Response:
    """Replace the record with the form's (any type): ``service.replace``."""
    row = get_writable(web.db, web.p, DnsRecord, record_id)
    domain = web.db.get_one(Domain, row.domain_id)

    def write() -> DnsRecord:
        return service.replace(web.db, web.p, domain, row, RECORD.validate_python(_body(form)))

    refused = _write(web, write)
    if isinstance(refused, tuple):
        status, errors = refused
        return _record_page(web, row, status, errors, _values(form))
    return redirect(
        f"/domains/{domain.id}/dns",
        web._("Record %(name)s %(type)s saved.") % {"name": row.name, "type": row.type},
    )


def _confirm(web: Web, row: DnsRecord, status: int = 200, **ctx: Any) -> Response:
    domain = web.db.get_one(Domain, row.domain_id)
    ctx.setdefault("errors", FormErrors())
    return render(
        web,
        "panel/dns/delete.html",
        status,
        domain=domain,
        record=row,
        fqdn=zones.fqdn(row.name, domain.name),
        writable=web.can_write(domain.account_id),
        **ctx,
    )


@router.get("/dns-records/{record_id}/delete")
def confirm_delete_record(record_id: int, web: WebDep) -> Response:
    return _confirm(web, get_visible(web.db, web.p, DnsRecord, record_id))


@router.post("/dns-records/{record_id}/delete")
def delete_record(record_id: int, web: WebDep, form: CsrfForm) -> Response:
    row = get_writable(web.db, web.p, DnsRecord, record_id)
    domain_id, name, rtype = row.domain_id, row.name, row.type
    service.delete(web.db, web.p, row)
    web.db.commit()
    return redirect(
        f"/domains/{domain_id}/dns",
        web._("Record %(name)s %(type)s deleted.") % {"name": name, "type": rtype},
    )
