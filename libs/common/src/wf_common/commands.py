"""Commands to the orchestrator, sent as NATS request/reply on wf.cmd.<sender>.<name> (or
wf.cmd.<name>, which only the orchestrator's own login may use on the embedded server).

Every command says who issued it (`actor`); the sender (the NATS login, named by the subject, which
the embedded server lets each login publish on for itself only) bounds which actors it may name:
`SENDERS`, checked by the orchestrator with `may_claim`. The reply is a `CommandReply`: `ok` with
`data`, or an `error` with a code the board API maps to an HTTP status (see wf_common.errors).
"""

from __future__ import annotations

import re
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
from wf_common.hooks import DeliveryId, HookAction, HookName, Refusal, Sha256Hex
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


class CancelTask(_TaskCommand):
    """Drop a task that is not running or finished (the sync bridge sends it for an item deleted in a
    tracker with `propagate_deletes`); the orchestrator decides whether it may be cancelled."""

    type: Literal["cancel_task"] = "cancel_task"
    reason: Reason


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


class CreateHook(_ProjectCommand):
    """A new inbound webhook for the project; the reply's `salt` lets the board derive its secret."""

    type: Literal["create_hook"] = "create_hook"
    name: HookName
    action: HookAction = "idea"


class DeleteHook(_Command):
    type: Literal["delete_hook"] = "delete_hook"
    name: HookName


class DeliverHook(_Command):
    """A delivery the board API verified (signature, timestamp): make its idea or task, once per
    delivery id. The orchestrator fills the hook's project and action from the hook."""

    type: Literal["deliver_hook"] = "deliver_hook"
    name: HookName
    delivery_id: DeliveryId
    body_sha256: Sha256Hex
    title: Title | None = None
    text: LongText = ""
    acceptance_criteria: list[Criterion] = Field(default_factory=list, max_length=ITEMS_MAX)
    priority: int = Field(5, ge=1, le=10)


class CountHookRefusal(_Command):
    """The board API refused a delivery of the hook (counted for `wf hook list`)."""

    type: Literal["count_hook_refusal"] = "count_hook_refusal"
    name: HookName
    reason: Refusal


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
    | ListCheckpoints
    | CreateHook
    | DeleteHook
    | DeliverHook
    | CountHookRefusal
    | CancelTask,
    Field(discriminator="type"),
]

COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)
COMMAND_TYPES: tuple[str, ...] = tuple(
    cls.model_fields["type"].default for cls in get_args(get_args(Command)[0])
)


# The NATS logins that send commands (wf_cli.credentials.NATS_KINDS) and the actors each may name: the
# board API is the token's holder (`human:<owner>`, `… via <client>`), an MCP client acting with the
# token (`mcp:<client name>`), its signed webhooks (`hook:<name>`) and its health check; the sync
# bridge is `sync:<tracker>`; the operator's `nats` CLI is a human. A runner sends none (its login
# cannot publish on wf.cmd.>); any other sender is refused.
# None = wf.cmd.<type>: the orchestrator's own login (or a server without logins, where the bus
# itself is the operator's to protect).
SENDERS: dict[str, re.Pattern[str]] = {
    "board": re.compile(r"human(:.+)?|mcp:.+|hook:.+|board-api"),
    "sync-bridge": re.compile(r"sync:.+"),
    "cli": re.compile(r"human(:.+)?"),
    "orchestrator": re.compile(r".+"),
}


def may_claim(sender: str | None, actor: str) -> bool:
    """Whether a command sent with the login `sender` may name `actor` as who issued it."""
    if sender is None:
        return True
    pattern = SENDERS.get(sender)
    return pattern is not None and pattern.fullmatch(actor) is not None


class ReplyError(BaseModel):
    code: CommandErrorCode
    message: str


class CommandReply(Message):
    ok: bool
    data: dict[str, Any] | None = None
    error: ReplyError | None = None
