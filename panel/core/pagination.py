"""Keyset (cursor) pagination: a page costs the same at row 10 and row 100,000."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from pydantic import BaseModel
from sqlalchemy import Select
from sqlalchemy.orm import InstrumentedAttribute, Session

from panel.core.errors import Invalid

ItemT = TypeVar("ItemT")
RowT = TypeVar("RowT")


class Page(BaseModel, Generic[ItemT]):
    """One page of a list; pass ``next_cursor`` back as ``cursor`` for the next one."""

    items: list[ItemT]
    next_cursor: str | None


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": last_id}).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> int:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        data = json.loads(base64.urlsafe_b64decode(padded.encode()))
        after = data["after"]
        if isinstance(after, int) and not isinstance(after, bool) and after >= 0:
            return after
    except (ValueError, KeyError, TypeError, binascii.Error):
        pass
    raise Invalid("cursor", "is not a cursor this API returned; start again without it")


def paginate(
    session: Session,
    stmt: Select[Any],
    id_column: InstrumentedAttribute[int],
    cursor: str | None,
    limit: int,
    newest_first: bool = False,
) -> tuple[Sequence[Any], str | None]:
    """Rows after the cursor in id order (descending with ``newest_first``), and the cursor
    of the next page (None at the end)."""
    if cursor:
        after = decode_cursor(cursor)
        stmt = stmt.where(id_column < after if newest_first else id_column > after)
    order = id_column.desc() if newest_first else id_column
    rows = session.scalars(stmt.order_by(order).limit(limit + 1)).all()
    if len(rows) > limit:
        rows = rows[:limit]
        return rows, encode_cursor(int(rows[-1].id))
    return rows, None


def like_pattern(text: str) -> str:
    """A LIKE pattern that matches ``text`` literally (its '%' and '_' escaped with '\\')."""
    escaped = text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"
