"""Every error becomes ``{"error": code, "message": text}`` here, and nowhere else.

Validation errors (422) also carry ``fields``: one entry per wrong value, named the way a client wrote
it (``body.priority``, ``query.stage``, ``path.key``, ``header.X-WF-Client``). A body that is not JSON
at all is a 400. A 405 names every method the path has in ``Allow``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Sequence
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from wf_common.errors import BusError, CommandError
from wf_common.fields import error_message

from wf_board_api.errors import ORCHESTRATOR_DOWN, ApiError, Invalid

log = logging.getLogger(__name__)

COMMAND_STATUS = {
    "invalid": 422,
    "not_found": 404,
    "conflict": 409,
    "forbidden": 403,
    "unavailable": 503,
    "internal": 500,
}
HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "too_many_requests",
    503: "unavailable",
}


E = TypeVar("E", bound=BaseException)


def _expect(exc: Exception, kind: type[E]) -> E:
    """The handler's exception as the type it was registered for (Starlette types them all Exception)."""
    if not isinstance(exc, kind):
        raise TypeError(f"{type(exc).__name__} reached the handler of {kind.__name__}") from exc
    return exc


def _printable(value: Any) -> Any:
    """`value` with lone surrogates escaped: they cannot be encoded, and a message may quote input."""
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, list):
        return [_printable(v) for v in value]
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    return value


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    body: dict[str, Any] = _printable({"error": code, "message": message, **extra})
    return body


def _respond(status: int, code: str, message: str, **extra: Any) -> JSONResponse:
    return JSONResponse(error_body(code, message, **extra), status_code=status)


def describe_validation_errors(errors: Sequence[Any]) -> list[dict[str, Any]]:
    """pydantic/FastAPI error dicts → [{"field": "body.priority", "message": ..., "type": ...}]."""
    fields = []
    for e in errors:
        loc = [str(p) for p in e.get("loc", ())]
        message = error_message(e)
        kind = str(e.get("type", "value_error"))
        if kind == "json_invalid":
            # loc ends with a character offset, which names no field; say what the parser said.
            loc = loc[:1]
            detail = (e.get("ctx") or {}).get("error")
            message = f"the body is not valid JSON ({detail})" if detail else "the body is not valid JSON"
        fields.append({"field": ".".join(loc) or "request", "message": message, "type": kind})
    return fields


def invalid_response(fields: list[dict[str, Any]]) -> JSONResponse:
    message = "; ".join(f"{f['field']}: {f['message']}" for f in fields) or "the request is not valid"
    return _respond(422, "invalid", message, fields=fields)


async def _request_validation(_: Request, exc: Exception) -> JSONResponse:
    exc = _expect(exc, RequestValidationError)
    fields = describe_validation_errors(exc.errors())
    unreadable = [f for f in fields if f["type"] == "json_invalid"]
    if unreadable:
        # Not a wrong value but no value at all: the body could not be parsed.
        return _respond(400, "bad_request", unreadable[0]["message"])
    return invalid_response(fields)


async def _api_error(_: Request, exc: Exception) -> JSONResponse:
    exc = _expect(exc, ApiError)
    if isinstance(exc, Invalid) and exc.fields:
        return _respond(exc.status_code, exc.code, exc.message, fields=exc.fields)
    return _respond(exc.status_code, exc.code, exc.message)


async def _command_error(_: Request, exc: Exception) -> JSONResponse:
    exc = _expect(exc, CommandError)
    status = COMMAND_STATUS.get(exc.code, 500)
    if status == 500:
        log.error("the orchestrator reported an internal error: %s", exc.message)
    return _respond(status, exc.code, exc.message)


async def _bus_error(_: Request, exc: Exception) -> JSONResponse:
    log.warning("NATS: %s", exc)
    return _respond(503, "unavailable", f"{ORCHESTRATOR_DOWN} ({exc})")


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    exc = _expect(exc, StarletteHTTPException)
    code = HTTP_CODES.get(exc.status_code, "internal" if exc.status_code >= 500 else "bad_request")
    headers = dict(exc.headers or {})
    message = str(exc.detail)
    if exc.status_code == 405:
        allowed = _allowed_methods(request)
        headers["Allow"] = ", ".join(allowed)
        message = f"{request.method} is not allowed on {request.url.path}; use {' or '.join(allowed)}"
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """The methods the OpenAPI schema declares for this path (the routes are what it is made from)."""
    path = request.url.path
    methods: set[str] = set()
    for template, operations in request.app.openapi().get("paths", {}).items():
        if re.fullmatch(re.sub(r"\\\{[^/]+?\\\}", "[^/]+", re.escape(template)), path):
            methods |= {m.upper() for m in operations}
    if not methods:  # /docs, /openapi.json: pages outside the API
        methods = {"GET"}
    return sorted(methods)


# SQLSTATE classes that mean "the database cannot serve us now", not "this service has a bug":
# connection exceptions, too many connections/out of resources, shutting down or starting up.
_UNAVAILABLE_SQLSTATE = ("08", "53", "57P")
_NO_DATABASE = "3D000"
_NO_TABLE = "42P01"


async def _database_error(_: Request, exc: Exception) -> JSONResponse:
    exc = _expect(exc, DBAPIError)
    sqlstate = str(getattr(exc.orig, "sqlstate", None) or getattr(exc.orig, "pgcode", None) or "")
    if sqlstate == _NO_DATABASE:
        log.warning("database missing: %s", exc.orig)
        return _respond(
            503, "unavailable", f"the database does not exist ({exc.orig}); check WF_DATABASE_URL"
        )
    if sqlstate == _NO_TABLE:
        # The orchestrator creates the schema (its migrations); before its first start there is none.
        log.warning("database schema missing: %s", exc.orig)
        return _respond(
            503, "unavailable", "the database has no Workflow Hub tables yet; start the orchestrator once"
        )
    if (
        isinstance(exc, OperationalError | InterfaceError)
        or exc.connection_invalidated
        or sqlstate.startswith(_UNAVAILABLE_SQLSTATE)
    ):
        log.warning("database unavailable: %s", exc)
        return _respond(503, "unavailable", "the database is not answering; is PostgreSQL running?")
    log.error("database error", exc_info=exc)
    return _respond(500, "internal", "unexpected database error in the board API; its log has the details")


async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
    log.exception("unhandled error", exc_info=exc)
    return _respond(500, "internal", "unexpected error in the board API; its log has the details")


def register(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _request_validation)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(CommandError, _command_error)
    app.add_exception_handler(BusError, _bus_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(DBAPIError, _database_error)
    app.add_exception_handler(Exception, _unexpected)
