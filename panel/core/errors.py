"""One exception family, rendered as RFC 9457 problem+json by one set of handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import IntegrityError
from starlette.exceptions import HTTPException as StarletteHTTPException

PROBLEM_JSON = "application/problem+json"
log = logging.getLogger("konbit.errors")


class ProblemError(Exception):
    """Base of every error the API answers with; ``kind`` becomes the problem type."""

    status = 500
    kind = "internal-error"
    title = "Internal error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors or []
        self.headers = headers or {}

    def body(self, instance: str | None = None) -> dict[str, Any]:
        body: dict[str, Any] = {
            "type": f"urn:konbit:problem:{self.kind}",
            "title": self.title,
            "status": self.status,
            "detail": self.detail,
        }
        if instance:
            body["instance"] = instance
        if self.errors:
            body["errors"] = self.errors
        return body


class Unauthorized(ProblemError):
    status, kind, title = 401, "unauthorized", "Authentication required"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": "Bearer"})


class Forbidden(ProblemError):
    status, kind, title = 403, "forbidden", "Not allowed"


class NotFound(ProblemError):
    status, kind, title = 404, "not-found", "Not found"

    def __init__(self, what: str = "object") -> None:
        super().__init__(f"No such {what}, or it is not yours to see.")


class Conflict(ProblemError):
    status, kind, title = 409, "conflict", "Conflict"


class QuotaExceeded(ProblemError):
    status, kind, title = 409, "quota-exceeded", "Quota reached"

    def __init__(self, quota: str, used: int, limit: int) -> None:
        super().__init__(
            f"The account's '{quota}' quota is reached ({used} of {limit}); "
            "delete something or ask the provider's staff to raise the quota.",
            errors=[{"field": f"quotas.{quota}", "reason": f"quota reached: {used} of {limit}"}],
        )


class PreconditionFailed(ProblemError):
    status, kind, title = 412, "precondition-failed", "Changed since you read it"


class Unavailable(ProblemError):
    """A host could not be reached; the message says which and why."""

    status, kind, title = 503, "host-unavailable", "Host unavailable"


class Invalid(ProblemError):
    """A 422 naming the field at fault, for checks that need the database."""

    status, kind, title = 422, "validation-error", "Invalid input"

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}", errors=[{"field": field, "reason": reason}])


def _problem(exc: ProblemError, request: Request) -> JSONResponse:
    return JSONResponse(
        exc.body(request.url.path),
        status_code=exc.status,
        media_type=PROBLEM_JSON,
        headers=exc.headers,
    )


def _field_of(loc: tuple[int | str, ...]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in {"body", "query", "path", "header"}:
        parts = parts[1:]
    # Drop pydantic's internal validator tags such as "function-after[...]".
    parts = [p for p in parts if "[" not in p]
    return ".".join(parts) or "body"


def _loc(error: dict[str, Any]) -> tuple[int | str, ...]:
    """Where the error is; a tagged union's unknown tag is the tag's field (``type``)."""
    loc = tuple(error["loc"])
    if error.get("type") in ("union_tag_invalid", "union_tag_not_found"):
        tag = str((error.get("ctx") or {}).get("discriminator", "")).strip("'\"")
        if tag:
            return (*loc, tag)
    return loc


def _reason(error: dict[str, Any]) -> str:
    msg = str(error.get("msg", "invalid"))
    return msg.removeprefix("Value error, ")


def install(app: FastAPI) -> None:
    """Register the handlers that turn every error into problem+json."""

    @app.exception_handler(ProblemError)
    async def _problem_handler(request: Request, exc: ProblemError) -> JSONResponse:
        return _problem(exc, request)

    @app.exception_handler(RequestValidationError)
    async def _validation_handler(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field_of(_loc(e)), "reason": _reason(e)} for e in exc.errors()]
        detail = "; ".join(f"{e['field']}: {e['reason']}" for e in errors)
        return JSONResponse(
            {
                "type": "urn:konbit:problem:validation-error",
                "title": "Invalid input",
                "status": 422,
                "detail": detail,
                "instance": request.url.path,
                "errors": errors,
            },
            status_code=422,
            media_type=PROBLEM_JSON,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_handler(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            {
                "type": "about:blank",
                "title": str(exc.detail),
                "status": exc.status_code,
                "detail": str(exc.detail),
                "instance": request.url.path,
            },
            status_code=exc.status_code,
            media_type=PROBLEM_JSON,
            headers=getattr(exc, "headers", None),
        )

    @app.exception_handler(IntegrityError)
    async def _integrity_handler(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests raced for the same unique name or key; the loser gets a clear 409.
        log.info("integrity conflict", extra={"path": request.url.path})
        return _problem(
            Conflict("This conflicts with a change made at the same moment; read and retry."),
            request,
        )

    @app.exception_handler(Exception)
    async def _crash_handler(request: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", extra={"path": request.url.path})
        return JSONResponse(
            {
                "type": "urn:konbit:problem:internal-error",
                "title": "Internal error",
                "status": 500,
                "detail": "The panel failed unexpectedly; the error is in its log.",
            },
            status_code=500,
            media_type=PROBLEM_JSON,
        )
