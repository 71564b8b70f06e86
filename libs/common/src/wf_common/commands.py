"""Commands to the orchestrator, sent as NATS request/reply on wf.cmd.<name>.

Every command says who issued it (`actor`). The reply is a `CommandReply`: `ok` with `data`, or an
`error` with a code the board API maps to an HTTP status (see wf_common.errors).
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, get_args

from pydantic import BaseModel, Field, TypeAdapter, model_validator

from wf_common.errors import CommandErrorCode
from wf_common.fields import (
    Actor,
    BugKey,
    Criterion,
    FeedbackText,
    IdeaText,
    LongText,
    Note,
    ProjectName,
    Reason,
    RepoPath,
    Slug,
    StageName,
    TaskKey,
    TestCommand,
    Title,
    Workspace,
)
from wf_common.jobs import Message
from wf_common.text import ITEMS_MAX


class _Command(Message):
    # Every text field follows wf_common.text's rules (wf_common.fields): a malformed command is
    # refused as "invalid" naming the field, before anything is written anywhere.
    actor: Actor = "human"


class _ProjectCommand(_Command):
    project: Slug


class _TaskCommand(_ProjectCommand):
    task_key: TaskKey


class CreateProject(_Command):
    type: Literal["create_project"] = "create_project"
    slug: Slug
    name: ProjectName | None = None
    workspace: Workspace
    test_command: TestCommand | None = None


class SubmitIdea(_ProjectCommand):
    type: Literal["submit_idea"] = "submit_idea"
    text: IdeaText
    priority: int = Field(5, ge=1, le=10)


class Approve(_TaskCommand):
    type: Literal["approve"] = "approve"
    note: Note = ""


class Reject(_TaskCommand):
    type: Literal["reject"] = "reject"
    reason: Reason


class EditTask(_TaskCommand):
    type: Literal["edit_task"] = "edit_task"
    title: Title | None = None
    description: LongText | None = None
    acceptance_criteria: list[Criterion] | None = Field(None, max_length=ITEMS_MAX)
    priority: int | None = Field(None, ge=1, le=10)
    blocked_by: list[TaskKey] | None = Field(None, max_length=ITEMS_MAX)


class AddFeedback(_TaskCommand):
    type: Literal["add_feedback"] = "add_feedback"
    text: FeedbackText
    # A comment on a line of the task's diff: the file (repository-relative) and its line number.
    file: RepoPath | None = None
    line: int | None = Field(None, ge=1, le=10_000_000)


class MoveTask(_TaskCommand):
    """A card dragged to another column; the orchestrator decides whether that move is allowed."""

    type: Literal["move_task"] = "move_task"
    to_stage: StageName


class RetryTask(_TaskCommand):
    type: Literal["retry_task"] = "retry_task"


class _Scoped(_Command):
    """No scope: everything. `project`: one project. `project` and `task_key`: one task."""

    project: Slug | None = None
    task_key: TaskKey | None = None

    @model_validator(mode="after")
    def _task_needs_project(self) -> _Scoped:
        if self.task_key is not None and self.project is None:
            raise ValueError("task_key needs project: a task key is unique within its project only")
        return self


class Pause(_Scoped):
    type: Literal["pause"] = "pause"


class Resume(_Scoped):
    type: Literal["resume"] = "resume"


class Rollback(_TaskCommand):
    """Reset the task's branch to the checkpoint taken before `to_stage` and send the task there."""

    type: Literal["rollback"] = "rollback"
    to_stage: StageName


class ListCheckpoints(_TaskCommand):
    """A read: the checkpoint refs of the task's branch (they live in git, which the orchestrator has)."""

    type: Literal["list_checkpoints"] = "list_checkpoints"


class KillBug(_ProjectCommand):
    type: Literal["kill_bug"] = "kill_bug"
    bug_key: BugKey
    reason: Note = ""


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
    | Ping
    | Rollback
    | ListCheckpoints,
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
