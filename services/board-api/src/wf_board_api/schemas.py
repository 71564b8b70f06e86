"""Schemas shared by several domains."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class Body(BaseModel):
    """A request body: an unknown field is an error, so a typo (`priorty`) is named, not ignored."""

    model_config = ConfigDict(extra="forbid")


class ErrorOut(BaseModel):
    error: str
    message: str


# Documented on every route that can fail this way, so /docs shows the error shape.
ERROR_RESPONSES: dict[int | str, dict[str, object]] = {
    404: {"model": ErrorOut, "description": "the project, task, bug or attachment does not exist"},
    422: {"model": ErrorOut, "description": "a value in the request is wrong; `message` names it"},
    503: {"model": ErrorOut, "description": "the database, NATS or the orchestrator is not answering"},
}
COMMAND_RESPONSES: dict[int | str, dict[str, object]] = {
    **ERROR_RESPONSES,
    409: {"model": ErrorOut, "description": "the command does not fit the task's current state"},
}
