"""``Idempotency-Key`` on creates: a retried request returns the first answer, not a twin."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from typing import Annotated, Any

from fastapi import Header, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import ForeignKey, String, UniqueConstraint, select
from sqlalchemy.orm import Mapped, Session, mapped_column

from panel.core.auth import Principal
from panel.core.db import Base, utcnow
from panel.core.errors import Conflict, Invalid

TTL = dt.timedelta(hours=24)


class IdempotencyRecord(Base):
    """The answer given to one (user, key): replayed while it is fresh."""

    __tablename__ = "idempotency_records"
    __table_args__ = (UniqueConstraint("user_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    key: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int] = mapped_column()
    response: Mapped[dict[str, Any]] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(default=utcnow, index=True)


def _fingerprint(method: str, path: str, payload: BaseModel) -> str:
    # Secrets are left out: a fast hash of a password would be a gift to whoever reads the DB.
    data = payload.model_dump(mode="json", exclude={"password"})
    raw = json.dumps([method, path, data], sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(raw.encode()).hexdigest()


class Idempotency:
    """Per-request helper: ``replay()`` before creating, ``remember()`` after."""

    def __init__(self, request: Request, key: str | None) -> None:
        self.method = request.method
        self.path = request.url.path
        self.key = key
        if key is not None and not (1 <= len(key) <= 200 and key.isprintable()):
            raise Invalid("Idempotency-Key", "must be 1-200 printable characters")

    def replay(
        self, session: Session, principal: Principal, payload: BaseModel
    ) -> JSONResponse | None:
        if self.key is None:
            return None
        record = session.scalar(
            select(IdempotencyRecord).where(
                IdempotencyRecord.user_id == principal.user.id,
                IdempotencyRecord.key == self.key,
            )
        )
        if record is None:
            return None
        if record.created_at <= utcnow() - TTL:
            session.delete(record)
            session.flush()
            return None
        if record.fingerprint != _fingerprint(self.method, self.path, payload):
            raise Conflict("This Idempotency-Key was used for a different request; use a new key.")
        return JSONResponse(
            record.response,
            status_code=record.status_code,
            headers={"Idempotent-Replayed": "true"},
        )

    def remember(
        self,
        session: Session,
        principal: Principal,
        payload: BaseModel,
        result: BaseModel,
        status_code: int = 201,
    ) -> None:
        if self.key is None:
            return
        session.add(
            IdempotencyRecord(
                user_id=principal.user.id,
                key=self.key,
                fingerprint=_fingerprint(self.method, self.path, payload),
                status_code=status_code,
                response=result.model_dump(mode="json"),
            )
        )


def get_idempotency(
    request: Request, idempotency_key: Annotated[str | None, Header()] = None
) -> Idempotency:
    return Idempotency(request, idempotency_key)
