"""One error body for every failure: {"error": {"code", "message"}} (plus "details" when useful),
declared in the OpenAPI document with `responses(...)` wherever a route can answer it."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import compile_path

_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
          405: "method_not_allowed", 409: "conflict", 413: "too_large", 422: "invalid",
          429: "quota_exceeded", 500: "internal", 503: "unavailable"}
METHODS = ("GET", "PUT", "POST", "DELETE", "OPTIONS", "HEAD", "PATCH", "TRACE")
_WHEN = {400: "The body is not valid JSON (or not a readable form).",
         401: "No token, a malformed Authorization header, or an unknown or revoked token.",
         403: "The token's scope does not allow this (a read token writing).",
         404: "No such row, or one this token may not see.",
         409: "The row's state does not allow this (e.g. starting a run that is not created).",
         413: "The upload is over the server's size limit.",
         422: "A parameter or the body breaks the schema or a rule it states in words.",
         429: "The token's quota of active runs is full."}


class ErrorInfo(BaseModel):
    """What went wrong: a stable code, a sentence naming the fix, and per-field details."""

    code: str = Field(description="Machine-readable: bad_request, unauthorized, forbidden, "
                      "not_found, conflict, too_large, invalid, invalid_config, invalid_problem, "
                      "quota_exceeded, internal, ...")
    message: str = Field(description="What is wrong and how to fix it.")
    details: list[dict[str, Any]] | None = Field(
        default=None, description="One entry per problem: where (a field) or file, message, and "
        "fix or allowed values when known.")


class ErrorBody(BaseModel):
    """The body of every error answer."""

    error: ErrorInfo


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
    return ErrorBody(error=ErrorInfo(code=code, message=message, details=details or None)) \
        .model_dump(exclude_none=True)


def responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """Returns the OpenAPI `responses` entries of error statuses a route can answer."""
    return {status: {"model": ErrorBody, "description": _WHEN[status]} for status in statuses}


def allowed_methods(request: Request) -> str | None:
    """Returns the Allow header of a 405: the methods the OpenAPI document gives the request's
    path (its literal path before a template, as routing tries them), not only those of the one
    route Starlette tried, nor the UI's static mount that catches every path."""
    paths = request.app.openapi()["paths"]
    path = request.url.path
    template = path if path in paths else next(
        (t for t in paths if compile_path(t)[0].match(path)), None)
    if template is None:
        return None
    return ", ".join(sorted(m.upper() for m in paths[template] if m.upper() in METHODS))


def install(app: FastAPI) -> None:
    """Registers the handlers that give every error the same body."""

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
        return JSONResponse(body(exc.code, exc.message, exc.details), exc.status, headers=headers)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        headers = dict(exc.headers or {})
        if exc.status_code == 405 and (allow := allowed_methods(request)):
            headers["Allow"] = allow
        return JSONResponse(body(_CODES.get(exc.status_code, "error"), str(exc.detail)),
                            exc.status_code, headers=headers or None)

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
