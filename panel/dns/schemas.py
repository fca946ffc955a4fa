"""What the DNS API takes and returns.  Each record type has its own fields, each checked
against a strict pattern: every value reaches a zone file, whose syntax has no escaping
a member could be trusted with (a TXT's quote or backslash, a newline, are refused)."""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field

from panel.core.validation import normalize_domain

_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
NAME_RE = re.compile(rf"@|(?:\*\.)?{_LABEL}(?:\.{_LABEL})*|\*")
TXT_RE = re.compile(r"[\x20-\x21\x23-\x5b\x5d-\x7e]{1,2048}")  # printable, no " nor \
CAA_VALUE_RE = re.compile(r"[A-Za-z0-9.:/@;=_+-]{1,200}")


def _str(value: object) -> object:
    return value.strip().lower() if isinstance(value, str) else value


def check_name(value: str) -> str:
    """A name relative to the zone: "@" (its apex), "www", "_dmarc", "*.dev"..."""
    if not NAME_RE.fullmatch(value):
        raise ValueError(
            "must be '@' (the domain itself) or a name under it, like 'www' or '_dmarc': "
            "letters, digits, '-' and '_' in labels of 1-63, joined by '.'"
        )
    if len(value) > 190:
        raise ValueError("is longer than 190 characters")
    return value


def check_target(value: str) -> str:
    """A host name a record points at, absolute (stored with its trailing dot)."""
    return normalize_domain(value) + "."


def check_txt(value: str) -> str:
    if not TXT_RE.fullmatch(value):
        raise ValueError(
            "must be 1-2048 printable ASCII characters, without double quotes or backslashes"
        )
    return value


def check_caa_value(value: str) -> str:
    if not CAA_VALUE_RE.fullmatch(value):
        raise ValueError(
            "must be 1-200 letters, digits or . : / @ ; = _ + - (a CA's domain, or a mailto: "
            "or https: URL)"
        )
    return value


RelName = Annotated[str, BeforeValidator(_str), AfterValidator(check_name)]
Target = Annotated[str, BeforeValidator(_str), AfterValidator(check_target)]
Ttl = Annotated[int, Field(ge=60, le=86_400, description="seconds, 60 to 86400")]
Port = Annotated[int, Field(ge=0, le=65_535)]


class _Record(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: RelName = "@"
    ttl: Ttl = 3600


class ARecord(_Record):
    type: Literal["A"]
    address: ipaddress.IPv4Address


class AAAARecord(_Record):
    type: Literal["AAAA"]
    address: ipaddress.IPv6Address


class CNAMERecord(_Record):
    type: Literal["CNAME"]
    target: Target


class MXRecord(_Record):
    type: Literal["MX"]
    preference: Port = 10
    exchange: Target


class TXTRecord(_Record):
    type: Literal["TXT"]
    text: Annotated[str, AfterValidator(check_txt)]


class SRVRecord(_Record):
    type: Literal["SRV"]
    priority: Port = 0
    weight: Port = 0
    port: Port
    target: Target


class CAARecord(_Record):
    type: Literal["CAA"]
    flags: Literal[0, 128] = 0
    tag: Literal["issue", "issuewild", "iodef"]
    value: Annotated[str, AfterValidator(check_caa_value)]


RecordIn = Annotated[
    ARecord | AAAARecord | CNAMERecord | MXRecord | TXTRecord | SRVRecord | CAARecord,
    Field(discriminator="type"),
]


def txt_data(text: str) -> str:
    """A TXT's zone-file form: quoted strings of at most 255 characters each."""
    return " ".join(f'"{text[i : i + 255]}"' for i in range(0, len(text), 255))


def data_of(record: RecordIn) -> str:
    """The record's data in zone-file form, from fields that matched their patterns."""
    match record:
        case ARecord() | AAAARecord():
            return str(record.address)
        case CNAMERecord():
            return record.target
        case MXRecord():
            return f"{record.preference} {record.exchange}"
        case TXTRecord():
            return txt_data(record.text)
        case SRVRecord():
            return f"{record.priority} {record.weight} {record.port} {record.target}"
        case CAARecord():
            return f'{record.flags} {record.tag} "{record.value}"'
    raise AssertionError(record)  # pragma: no cover


class RecordOut(BaseModel):
    id: int | None = Field(description="a member's record; null: one Konbit derives")
    name: str
    fqdn: str
    type: str
    ttl: int
    data: str
    source: str = Field(description="'member', or what Konbit derives it from")


class ZoneOut(BaseModel):
    domain_id: int
    name: str
    hosted: bool = Field(description="false: managed elsewhere; set these records there")
    dnssec: bool
    name_servers: list[str]
    status: str = Field(description="active: every DNS server serves the latest records")


class ZonePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hosted: bool | None = None
    dnssec: bool | None = None


class MemberRecordOut(RecordOut):
    domain_id: int
    created_at: dt.datetime


class DkimKeyOut(BaseModel):
    id: int
    domain_id: int
    selector: str
    state: str = Field(
        description="published: in the zone, not signing yet; active: mail is signed with "
        "it; retired: replaced, in the zone until retire_after"
    )
    name: str = Field(description="the record's name, <selector>._domainkey.<domain>")
    type: str = "TXT"
    data: str = Field(description="the record's data (v=DKIM1; k=rsa; p=...)")
    created_at: dt.datetime
    activated_at: dt.datetime | None
    retire_after: dt.datetime | None
