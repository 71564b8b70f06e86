"""Errors shared by every Workflow Hub process.

WorkflowError            base of everything we raise on purpose
├── ConfigError          the configuration file or settings are wrong (message names the field)
├── BusError             NATS could not be reached or answered unexpectedly
└── CommandError         a command to the orchestrator was refused; `code` says why
    ├── code="invalid"   the request is malformed: it breaks a rule of the command's schema, which
    │                    the board API's OpenAPI schema states too (HTTP 422)
    ├── code="not_found" the project/task/bug does not exist (HTTP 404)
    ├── code="conflict"  the request does not fit the current state, e.g. approving a task
    │                    that is not waiting at a gate, a taken workspace, a dependency
    │                    cycle, a directory this machine refuses (HTTP 409)
    └── code="forbidden" the sender's NATS login may not send this command as that actor (HTTP 403)
"""

from __future__ import annotations

from typing import Literal

CommandErrorCode = Literal["invalid", "not_found", "conflict", "forbidden", "unavailable", "internal"]


class WorkflowError(Exception):
    """Base class; the message always says what went wrong and what to do."""


class ConfigError(WorkflowError):
    pass


class BusError(WorkflowError):
    pass


class CommandError(WorkflowError):
    def __init__(self, code: CommandErrorCode, message: str) -> None:
        super().__init__(message)
        self.code: CommandErrorCode = code
        self.message = message
