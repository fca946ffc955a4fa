"""Strict values a plugin's settings model may use; the panel's own checks build on them.

Each check raises ``ValueError`` with a sentence a person can act on; pydantic turns it
into a 422 naming the field.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from typing import Annotated

from pydantic import AfterValidator, BeforeValidator

# Unicode categories refused in every text field: controls (newlines, NUL, ESC), format
# characters (bidi overrides, zero-width joiners, soft hyphen), line/paragraph separators,
# surrogates, private use and unassigned code points.
_REFUSED_CATEGORIES = {"Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"}


def check_text(value: str) -> str:
    """Refuse control and invisible characters in any text field."""
    for ch in value:
        if unicodedata.category(ch) in _REFUSED_CATEGORIES:
            raise ValueError(
                f"contains a control or invisible character (U+{ord(ch):04X}); remove it"
            )
    return value


def _must_be_str(value: object) -> object:
    if isinstance(value, str):
        return check_text(value)
    return value


_LABEL_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")


PHP_VERSION_RE = re.compile(r"[5-9]\.[0-9]")


def check_php_version(value: str) -> str:
    if not PHP_VERSION_RE.fullmatch(value):
        raise ValueError("must be a PHP version like '8.2', or null for a static site")
    return value


PhpVersion = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_php_version)]


def check_host_address(value: str) -> str:
    check_text(value)
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        pass
    try:
        labels = value.lower().rstrip(".").split(".")
        if all(_LABEL_RE.fullmatch(label) for label in labels) and len(value) <= 253:
            return ".".join(labels)
    except ValueError:
        pass
    raise ValueError("must be an IP address or a DNS name")


HostAddress = Annotated[str, BeforeValidator(_must_be_str), AfterValidator(check_host_address)]
