"""One error body for every failure: {"error": {"code", "message"}} (plus "details" when useful)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
          429: "quota_exceeded", 500: "internal", 503: "unavailable"}


class ApiError(Exception):
    """An error answered as {"error": {"code", "message"}} with an HTTP status."""

    def __init__(self, status: int, message: str, code: str | None = None,
                 details: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.code = code or _CODES.get(status, "error")
        self.details = details


def not_found(what: str, ident: int | str) -> ApiError:
    """Returns the 404 for a missing (or not visible) row."""
    return ApiError(404, f"{what} {ident} not found (or not visible to this token)")


def body(code: str, message: str, details: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Returns the error body."""
    err: dict[str, Any] = {"code": code, "message": message}
    if details:
        err["details"] = details
    return {"error": err}


def install(app: FastAPI) -> None:
    """Registers the handlers that give every error the same body."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body(exc.code, exc.message, exc.details), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(body(_CODES.get(exc.status_code, "error"), str(exc.detail)),
                            exc.status_code, headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = [{"where": ".".join(str(p) for p in e["loc"]), "message": e["msg"]}
                   for e in exc.errors()]
        summary = "; ".join(f"{d['where']}: {d['message']}" for d in details[:5])
        return JSONResponse(body("invalid", f"invalid request: {summary}", details), 422)

    @app.exception_handler(Exception)
    async def _crash(_: Request, exc: Exception) -> JSONResponse:
        return JSONResponse(body("internal", f"internal error ({type(exc).__name__}); the "
                                 "server log has the traceback"), 500)
