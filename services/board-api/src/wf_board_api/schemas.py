"""Schemas shared by several domains: the request-body base, the error body, and the error responses
every operation declares (so the OpenAPI schema names every status code an operation can return)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: an unknown field is an error, so a typo (`priorty`) is named, not ignored."""

    model_config = ConfigDict(extra="forbid")


class FieldErrorOut(BaseModel):
    field: str
    message: str
    type: str


class ErrorOut(BaseModel):
    """Every error response: a machine-readable `error` code and a `message` for people."""

    error: str
    message: str
    # Only on 422: one entry per wrong value, named where the client wrote it (body.priority, path.key).
    fields: list[FieldErrorOut] | None = None


Responses = dict[int | str, dict[str, Any]]


def _error(description: str) -> dict[str, Any]:
    return {"model": ErrorOut, "description": description}


# Every request, whatever the operation (the Host allowlist, the token; see wf_board_api.auth).
GUARD_RESPONSES: Responses = {
    400: _error("the request cannot be read: a body that is not JSON, or a Host header that is not allowed"),
    421: _error("the Host header names a host this board does not answer for (DNS rebinding guard)"),
}
AUTH_RESPONSES: Responses = {
    401: _error("no token, or a wrong one: send `Authorization: Bearer <token>` (wf url prints it)"),
    403: _error("a cookie-authenticated write without the CSRF header or from another origin"),
}
# Every /api operation: guarded, authenticated, validated, and served from NATS or the database.
API_RESPONSES: Responses = {
    **GUARD_RESPONSES,
    **AUTH_RESPONSES,
    422: _error("a value in the request is wrong; `fields` names each one"),
    503: _error("the database, NATS or the orchestrator is not answering"),
}
NOT_FOUND: Responses = {404: _error("the project, task, bug or attachment does not exist")}
COMMAND_RESPONSES: Responses = {
    **NOT_FOUND,
    409: _error("the command does not fit the current state (a task not at a gate, a taken workspace)"),
}
# Kept for the routes that named them; the router-level API_RESPONSES add the rest.
ERROR_RESPONSES: Responses = NOT_FOUND
