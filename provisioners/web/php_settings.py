"""A site's PHP settings: an allow-list of php.ini directives, each range-checked.

The values end up in an FPM pool file, which has no escaping: every field matches a strict
pattern (or is a number or a boolean) before it is stored, and is normalised (``1G`` is
stored as ``1024M``), so what reaches the file is always one of a few known shapes.  An
unset field is PHP's own default.

Limits go in as ``php_admin_value``: a member's code cannot raise them with ``ini_set()``,
``set_time_limit()`` or a ``.user.ini`` file, so the ranges below are real caps (with
``pm.max_children`` they bound what one pool may take).  Preferences an application may
legitimately change at run time (showing errors, its time zone, session lifetime) go in as
``php_value``/``php_flag``: the panel's value is the site's default, not a cap.
"""

from __future__ import annotations

import functools
import re
import zoneinfo
from collections.abc import Callable
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationInfo, field_validator

from provisioners.api import DesiredState, Item, ObjectKind

KIND = "php_settings"

# PHP's built-in defaults (Debian's php.ini keeps them), for checks across fields.
DEFAULT_UPLOAD_MB = 2
DEFAULT_POST_MB = 8

_SIZE = re.compile(r"([1-9][0-9]{0,6})([MG])", re.IGNORECASE)
_TZ = re.compile(r"[A-Za-z][A-Za-z0-9_+/-]{0,63}")
# What a rendered value may look like; anything else is a bug, never written.
_VALUE = re.compile(r'"?[A-Za-z0-9_+/.-]{1,64}"?')


def _size(low: int, high: int) -> Callable[[object], str | None]:
    """A size in megabytes or gigabytes within ``low..high`` MB, normalised to ``<n>M``."""

    def check(value: object) -> str | None:
        if value is None:
            return None
        m = _SIZE.fullmatch(value) if isinstance(value, str) else None
        if m is None:
            raise ValueError("must be a size like '256M' or '1G' (megabytes or gigabytes)")
        mb = int(m[1]) * (1024 if m[2].upper() == "G" else 1)
        if not low <= mb <= high:
            raise ValueError(f"must be between {low}M and {high}M")
        return f"{mb}M"

    return check


@functools.cache
def _zones() -> frozenset[str]:
    # Not file names of the zoneinfo directory that are no zone a person would choose.
    return frozenset(zoneinfo.available_timezones()) - {"Factory", "localtime", "posixrules"}


def _timezone(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _TZ.fullmatch(value) or value not in _zones():
        raise ValueError("must be a time zone name like 'Europe/Paris' or 'UTC'")
    return value


def _mb(size: str | None, default: int) -> int:
    return int(size[:-1]) if size else default


class PhpSettings(BaseModel):
    """The php.ini directives a member may set for one site (all optional)."""

    model_config = ConfigDict(extra="forbid")

    memory_limit: Annotated[
        str | None,
        BeforeValidator(_size(16, 1024)),
        Field(description="memory one request may use, 16M..1024M (PHP's default: 128M)"),
    ] = None
    upload_max_filesize: Annotated[
        str | None,
        BeforeValidator(_size(1, 512)),
        Field(description="largest uploaded file, 1M..512M (default 2M)"),
    ] = None
    post_max_size: Annotated[
        str | None,
        BeforeValidator(_size(1, 512)),
        Field(
            description="largest request body, 1M..512M, at least upload_max_filesize (default 8M)",
            validate_default=True,
        ),
    ] = None
    max_file_uploads: int | None = Field(
        default=None, ge=1, le=100, description="files in one request (default 20)"
    )
    max_execution_time: int | None = Field(
        default=None, ge=1, le=600, description="seconds of run time, 1..600 (default 30)"
    )
    max_input_time: int | None = Field(
        default=None,
        ge=1,
        le=600,
        description="seconds to read the request, 1..600 (default: no limit of its own)",
    )
    max_input_vars: int | None = Field(
        default=None, ge=1000, le=100_000, description="input variables, 1000..100000"
    )
    display_errors: bool | None = Field(
        default=None, description="show errors in pages (default off on Debian)"
    )
    short_open_tag: bool | None = Field(default=None, description="accept '<?' (default off)")
    allow_url_fopen: bool | None = Field(
        default=None, description="let file functions open URLs (default on)"
    )
    date_timezone: Annotated[
        str | None,
        BeforeValidator(_timezone),
        Field(description="date.timezone, e.g. 'Europe/Paris' (default UTC)"),
    ] = None
    session_gc_maxlifetime: int | None = Field(
        default=None,
        ge=60,
        le=604_800,
        description="session.gc_maxlifetime in seconds, 60..604800 (default 1440)",
    )

    @field_validator("post_max_size")
    @classmethod
    def _post_holds_an_upload(cls, value: str | None, info: ValidationInfo) -> str | None:
        """A request body smaller than the largest upload would refuse that upload: compare
        what PHP will use (its defaults for unset fields)."""
        if "upload_max_filesize" not in info.data:
            return value  # upload_max_filesize itself is invalid: that is the error to show
        upload = info.data["upload_max_filesize"]
        post_mb, upload_mb = _mb(value, DEFAULT_POST_MB), _mb(upload, DEFAULT_UPLOAD_MB)
        if post_mb < upload_mb:
            now = f"it is {post_mb}M" if value else f"unset, it is PHP's default {post_mb}M"
            raise ValueError(f"must be at least upload_max_filesize ({upload_mb}M); {now}")
        return value


# field -> (directive, admin): admin for caps, plain for an application's own preferences.
DIRECTIVES: dict[str, tuple[str, bool]] = {
    "memory_limit": ("memory_limit", True),
    "upload_max_filesize": ("upload_max_filesize", True),
    "post_max_size": ("post_max_size", True),
    "max_file_uploads": ("max_file_uploads", True),
    "max_execution_time": ("max_execution_time", True),
    "max_input_time": ("max_input_time", True),
    "max_input_vars": ("max_input_vars", True),
    "display_errors": ("display_errors", False),
    "short_open_tag": ("short_open_tag", False),
    "allow_url_fopen": ("allow_url_fopen", True),  # PHP_INI_SYSTEM: only admin can set it
    "date_timezone": ("date.timezone", False),
    "session_gc_maxlifetime": ("session.gc_maxlifetime", False),
}
assert set(DIRECTIVES) == set(PhpSettings.model_fields)

PHP_SETTINGS = ObjectKind(
    name=KIND,
    role="web",
    spec=PhpSettings,
    placement="site",
    one_per_site=True,
    title="PHP settings",
)


def pool_lines(spec: PhpSettings) -> list[str]:
    """The pool file lines of the fields set, in the allow-list's order."""
    out: list[str] = []
    for field, (directive, admin) in DIRECTIVES.items():
        value: Any = getattr(spec, field)
        if value is None:
            continue
        if isinstance(value, bool):
            kind, text = ("php_admin_flag" if admin else "php_flag"), "on" if value else "off"
        else:
            kind = "php_admin_value" if admin else "php_value"
            text = f'"{value}"' if field == "date_timezone" else str(value)
        if not _VALUE.fullmatch(text):  # the model forbids it; a pool file must never get it
            raise ValueError(f"refusing to write {field} = {text!r} into a pool file")
        out.append(f"{kind}[{directive}] = {text}")
    return out


def site_settings(state: DesiredState) -> dict[int, Item[PhpSettings]]:
    """site id -> the settings its own pool runs with, for each live PHP site that has any.

    Deleted settings are gone (the site is back on its account's pool); settings whose
    last apply failed fall back to the account's pool too, which always exists: the site
    keeps serving, with PHP's defaults, while its own pool file stays as the host has it."""
    php_sites = {s.id for s in state.live_sites() if s.php}
    return {
        item.site_id: item
        for item in state.items(KIND, PhpSettings)
        if item.site_id in php_sites
        and not item.deleting
        and (KIND, item.id) not in state.failed
        and pool_lines(item.spec)
    }
