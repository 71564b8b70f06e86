"""Commands to the orchestrator, sent as NATS request/reply on wf.cmd.<name>.

Every command says who issued it (`actor`). The reply is a `CommandReply`: `ok` with `data`, or an
`error` with a code the board API maps to an HTTP status (see wf_common.errors).
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter, field_validator

from wf_common.errors import CommandErrorCode
from wf_common.jobs import Message
from wf_common.keys import BUG_KEY, SLUG, TASK_KEY


def _check(pattern: re.Pattern[str], what: str, example: str, v: str) -> str:
    if not pattern.match(v):
        raise ValueError(f"{v!r} is not a valid {what}; expected something like {example!r}")
    return v


class _Command(Message):
    actor: str = Field("human", min_length=1, max_length=100)


class _ProjectCommand(_Command):
    project: str

    @field_validator("project")
    @classmethod
    def _slug(cls, v: str) -> str:
        return _check(SLUG, "project slug", "listsnap", v)


class _TaskCommand(_ProjectCommand):
    task_key: str

    @field_validator("task_key")
    @classmethod
    def _key(cls, v: str) -> str:
        return _check(TASK_KEY, "task key", "T-001", v.upper())


class CreateProject(_Command):
    type: Literal["create_project"] = "create_project"
    slug: str
    name: str | None = Field(None, max_length=200)
    workspace: str = Field(min_length=1)
    test_command: str | None = Field(None, min_length=1, max_length=1000)

    @field_validator("slug")
    @classmethod
    def _slug(cls, v: str) -> str:
        return _check(SLUG, "project slug (lowercase letters, digits and -)", "listsnap", v)


class SubmitIdea(_ProjectCommand):
    type: Literal["submit_idea"] = "submit_idea"
    text: str = Field(min_length=3, max_length=20_000)
    priority: int = Field(5, ge=1, le=10)


class Approve(_TaskCommand):
    type: Literal["approve"] = "approve"
    note: str = Field("", max_length=5000)


class Reject(_TaskCommand):
    type: Literal["reject"] = "reject"
    reason: str = Field(min_length=1, max_length=5000)


class EditTask(_TaskCommand):
    type: Literal["edit_task"] = "edit_task"
    title: str | None = Field(None, min_length=3, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    acceptance_criteria: list[str] | None = None
    priority: int | None = Field(None, ge=1, le=10)
    blocked_by: list[str] | None = None

    @field_validator("blocked_by")
    @classmethod
    def _keys(cls, v: list[str] | None) -> list[str] | None:
        return None if v is None else [_check(TASK_KEY, "task key", "T-001", k.upper()) for k in v]


class AddFeedback(_TaskCommand):
    type: Literal["add_feedback"] = "add_feedback"
    text: str = Field(min_length=1, max_length=20_000)
    # A comment on a line of the task's diff: the file (repository-relative) and its line number.
    file: str | None = Field(None, min_length=1, max_length=500)
    line: int | None = Field(None, ge=1)


class MoveTask(_TaskCommand):
    """A card dragged to another column; the orchestrator decides whether that move is allowed."""

    type: Literal["move_task"] = "move_task"
    to_stage: str = Field(min_length=1, max_length=40)


class RetryTask(_TaskCommand):
    type: Literal["retry_task"] = "retry_task"


class Pause(_Command):
    type: Literal["pause"] = "pause"


class Resume(_Command):
    type: Literal["resume"] = "resume"


class KillBug(_ProjectCommand):
    type: Literal["kill_bug"] = "kill_bug"
    bug_key: str
    reason: str = Field("", max_length=5000)

    @field_validator("bug_key")
    @classmethod
    def _key(cls, v: str) -> str:
        return _check(BUG_KEY, "bug key", "B-001", v.upper())


class Ping(_Command):
    type: Literal["ping"] = "ping"


Command = Annotated[
    CreateProject
    | SubmitIdea
    | Approve
    | Reject
    | EditTask
    | AddFeedback
    | RetryTask
    | MoveTask
    | Pause
    | Resume
    | KillBug
    | Ping,
    Field(discriminator="type"),
]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES: tuple[str, ...] = tuple(
    cls.model_fields["type"].default for cls in get_args(get_args(Command)[0])
)


class ReplyError(BaseModel):
    code: CommandErrorCode
    message: str


class CommandReply(Message):
    ok: bool
    data: dict[str, Any] | None = None
    error: ReplyError | None = None
