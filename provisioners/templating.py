"""Jinja2 for host config files: strict (a missing value is an error, never empty text)."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jinja2

TEMPLATES = Path(__file__).resolve().parents[1] / "templates" / "hosts"


@cache
def environment() -> jinja2.Environment:
    # No autoescape: these are config files, not HTML; every value matched a strict
    # pattern at the API boundary, which is the only safety config files allow.
    return jinja2.Environment(  # noqa: S701
        loader=jinja2.FileSystemLoader(TEMPLATES),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )


def render(name: str, **values: Any) -> bytes:
    return environment().get_template(name).render(**values).encode()


def static(name: str) -> bytes:
    return (TEMPLATES / name).read_bytes()
