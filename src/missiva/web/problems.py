"""Errors as `application/problem+json` (RFC 9457), each naming the offending field."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from missiva.errors import Conflict, DomainError, InvalidInput, NotFound, NotSubscribed, PermissionDenied

PROBLEM = "application/problem+json"

_STATUS: list[tuple[type[DomainError], int]] = [
    (NotFound, 404),
    (InvalidInput, 422),
    (Conflict, 409),
    (NotSubscribed, 409),
    (PermissionDenied, 401),
]


def problem(
    status: int,
    title: str,
    detail: str,
    *,
    errors: list[dict[str, Any]] | None = None,
    type_: str = "about:blank",
    headers: dict[str, str] | None = None,
) -> JSONResponse:
    """A problem+json response."""
    body: dict[str, Any] = {"type": type_, "title": title, "status": status, "detail": detail}
    if errors:
        body["errors"] = errors
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def status_of(exc: DomainError) -> int:
    """The HTTP status a domain error maps to."""
    for cls, status in _STATUS:
        if isinstance(exc, cls):
            return status
    return 400


async def _domain_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, DomainError)
    errors = [{"field": exc.field, "message": exc.message}] if exc.field else None
    return problem(
        status_of(exc), exc.code, exc.message, errors=errors, type_=f"https://missiva.dev/problems/{exc.code}"
    )


async def _validation_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for err in exc.errors():
        loc = [str(p) for p in err.get("loc", ()) if p not in ("body", "query", "path")]
        errors.append({"field": ".".join(loc) or None, "message": err.get("msg", "invalid")})
    detail = "; ".join(f"{e['field']}: {e['message']}" if e["field"] else e["message"] for e in errors)
    return problem(
        422,
        "invalid",
        detail or "invalid request",
        errors=errors,
        type_="https://missiva.dev/problems/invalid",
    )


async def _http_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HTTPException)
    return problem(exc.status_code, "error", str(exc.detail), headers=getattr(exc, "headers", None))


def install(app: FastAPI) -> None:
    """Register the handlers on `app`."""
    app.add_exception_handler(DomainError, _domain_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(HTTPException, _http_error)
