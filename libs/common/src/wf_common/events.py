"""Events on wf.events.<project>.<task>.<type>: every state change, handoff and agent output.

One pydantic class per event with `type: Literal[...]`, combined in the `Event` discriminated union
read with `EVENT_ADAPTER`. Events carry enough (a full task snapshot on task events) for the board and
a tracker mirror to stay in step without reading the database, and `actor` says who caused them.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, TypeAdapter

from wf_common.jobs import Message, Usage, utcnow
from wf_common.subjects import event_subject


class TaskSnapshot(BaseModel):
    project: str
    key: str
    title: str
    description: str = ""
    acceptance_criteria: list[str] = Field(default_factory=list)
    stage: str
    state: str
    priority: int
    blocked_by: list[str] = Field(default_factory=list)
    parent: str | None = None
    rework_count: int = 0
    created_by: str = "human"
    status_reason: str | None = None
    updated_at: datetime | None = None


class BugSnapshot(BaseModel):
    project: str
    key: str
    task_key: str
    title: str
    description: str = ""
    source_stage: str
    status: str  # open, fixed, killed
    reproduction: dict[str, Any] = Field(default_factory=dict)


class ProjectSnapshot(BaseModel):
    slug: str
    name: str
    workspace: str
    test_command: str


class _Event(Message):
    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    at: datetime = Field(default_factory=utcnow)
    project: str | None = None
    task_key: str | None = None
    actor: str = "system"

    def subject(self) -> str:
        return event_subject(self.project, self.task_key, self.type)  # type: ignore[attr-defined]


class ProjectCreated(_Event):
    type: Literal["project.created"] = "project.created"
    snapshot: ProjectSnapshot


class TaskCreated(_Event):
    type: Literal["task.created"] = "task.created"
    task: TaskSnapshot


class TaskUpdated(_Event):
    type: Literal["task.updated"] = "task.updated"
    task: TaskSnapshot
    changes: dict[str, Any]


class TaskMoved(_Event):
    """A handoff: the task left one stage for another."""

    type: Literal["task.moved"] = "task.moved"
    task: TaskSnapshot
    from_stage: str
    to_stage: str
    handoff_id: int
    notes: str = ""


class TaskStateChanged(_Event):
    type: Literal["task.state_changed"] = "task.state_changed"
    task: TaskSnapshot
    from_state: str
    to_state: str
    reason: str | None = None


class ExecutionDispatched(_Event):
    type: Literal["execution.dispatched"] = "execution.dispatched"
    execution_id: int
    stage: str
    attempt: int


class ExecutionStarted(_Event):
    """Published by the runner that picked the job up."""

    type: Literal["execution.started"] = "execution.started"
    execution_id: int
    stage: str
    runner_id: str
    delivery: int = 1


class ExecutionWaiting(_Event):
    """Published by a runner whose job waits for the model server: it retries in `retry_in_seconds`
    (retry number `retry`). The orchestrator shows it as the task's status reason until the job starts
    again."""

    type: Literal["execution.waiting"] = "execution.waiting"
    execution_id: int
    reason: str
    url: str
    retry: int
    retry_in_seconds: float

    def describe(self) -> str:
        return (
            f"waiting for the model server at {self.url}, retry {self.retry} in {self.retry_in_seconds:g} s"
        )


class ResultRejected(_Event):
    """A Result whose apply failed on every try was terminated; its task was failed with `reason`."""

    type: Literal["result.rejected"] = "result.rejected"
    execution_id: int
    stage: str
    reason: str
    deliveries: int


class ExecutionFinished(_Event):
    type: Literal["execution.finished"] = "execution.finished"
    execution_id: int
    stage: str
    status: str
    summary: str = ""
    usage: Usage = Field(default_factory=Usage)


AgentOutputKind = Literal["token", "tool_call", "tool_result", "command_output", "log", "error"]


class AgentOutput(_Event):
    """What an agent is doing, streamed by the runner. `text` is untrusted model output."""

    type: Literal["agent.output"] = "agent.output"
    execution_id: int
    stage: str
    kind: AgentOutputKind
    text: str
    seq: int = 0


class BugCreated(_Event):
    type: Literal["bug.created"] = "bug.created"
    bug: BugSnapshot


class BugFixed(_Event):
    type: Literal["bug.fixed"] = "bug.fixed"
    bug: BugSnapshot


class BugKilled(_Event):
    type: Literal["bug.killed"] = "bug.killed"
    bug: BugSnapshot
    reason: str = ""


class ApprovalRequested(_Event):
    type: Literal["approval.requested"] = "approval.requested"
    stage: str
    handoff_id: int
    summary: str = ""


class ApprovalGranted(_Event):
    type: Literal["approval.granted"] = "approval.granted"
    stage: str
    handoff_id: int
    note: str = ""


class ApprovalRejected(_Event):
    type: Literal["approval.rejected"] = "approval.rejected"
    stage: str
    handoff_id: int
    reason: str


class FeedbackAdded(_Event):
    type: Literal["feedback.added"] = "feedback.added"
    text: str
    file: str | None = None
    line: int | None = None


class ControlChanged(_Event):
    type: Literal["control.changed"] = "control.changed"
    paused: bool
    # The scope of the change: none = the global flag; a project (and task_key) = that one's pause.
    scope: Literal["global", "project", "task"] = "global"


class ExecutionPaused(_Event):
    """The runner froze the job (before its next model turn, and its sandbox) because of a pause."""

    type: Literal["execution.paused"] = "execution.paused"
    execution_id: int
    stage: str
    runner_id: str
    scope: Literal["global", "project", "task"]


class ExecutionResumed(_Event):
    type: Literal["execution.resumed"] = "execution.resumed"
    execution_id: int
    stage: str
    runner_id: str
    paused_seconds: float = 0


class TaskRolledBack(_Event):
    type: Literal["task.rolled_back"] = "task.rolled_back"
    to_stage: str
    checkpoint: str  # the ref reset to
    sha: str
    saved: str  # the ref keeping what was there before


class TaskMerged(_Event):
    """The deploy gate merged the task's branch into the main branch (kind: fast-forward, merge,
    up-to-date), or found a conflict (the task went back to DEV with a bug)."""

    type: Literal["task.merged"] = "task.merged"
    branch: str
    into: str
    kind: str
    sha: str = ""
    conflicts: list[str] = Field(default_factory=list)


Event = Annotated[
    ProjectCreated
    | TaskCreated
    | TaskUpdated
    | TaskMoved
    | TaskStateChanged
    | ExecutionDispatched
    | ExecutionStarted
    | ExecutionWaiting
    | ExecutionFinished
    | ResultRejected
    | AgentOutput
    | BugCreated
    | BugFixed
    | BugKilled
    | ApprovalRequested
    | ApprovalGranted
    | ApprovalRejected
    | FeedbackAdded
    | ControlChanged
    | ExecutionPaused
    | ExecutionResumed
    | TaskRolledBack
    | TaskMerged,
    Field(discriminator="type"),
]

EVENT_ADAPTER: TypeAdapter[Event] = TypeAdapter(Event)


def parse_event(data: bytes | str) -> Event:
    return EVENT_ADAPTER.validate_json(data)
