"""Errors the board API raises on purpose; `exception_handlers` turns each into an HTTP response.

    ApiError                 base: an HTTP status, a machine-readable `code` and a message for people
    ├── NotFound             404 not_found: a project, task, bug or attachment does not exist
    ├── Invalid              422 invalid: a request value is wrong; `fields` names which
    ├── Unavailable          503 unavailable: NATS, the database or the orchestrator is not answering
    └── HookRefused          401/409/413/422: a webhook delivery refused (bad signature, replay, size)

Besides these, `wf_common.errors.CommandError` (the orchestrator refused a command) maps by its code:
invalid→422, not_found→404, conflict→409, forbidden→403, unavailable→503, internal→500; `BusError`
maps to 503.
Every error response has the body ``{"error": code, "message": text}``.
"""

from __future__ import annotations

from typing import Any

ORCHESTRATOR_DOWN = "the orchestrator is not answering; is it running (`wf start`)?"


class ApiError(Exception):
    status_code = 500
    code = "internal"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Invalid(ApiError):
    status_code = 422
    code = "invalid"

    def __init__(self, message: str, fields: list[dict[str, Any]] | None = None) -> None:
        super().__init__(message)
        self.fields = fields or []


class Unavailable(ApiError):
    status_code = 503
    code = "unavailable"


def field_error(field: str, message: str, kind: str = "value_error") -> Invalid:
    """An Invalid naming one field the way request validation does, e.g. ``query.stage: ...``."""
    return Invalid(f"{field}: {message}", [{"field": field, "message": message, "type": kind}])


class HookRefused(ApiError):
    """A delivery to POST /api/hooks/<name> refused; the status and code say why (wf_board_api.hooks)."""

    def __init__(self, status_code: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.code = code
