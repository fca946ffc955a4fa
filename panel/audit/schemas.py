"""Audit API shapes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    time: dt.datetime
    actor_user_id: int | None
    actor_email: str | None
    token_id: int | None
    client_addr: str | None
    action: str
    object_type: str
    object_id: int | None
    account_id: int | None
    changes: dict[str, Any]
