"""Tasks as the API shows them (the event stream's TaskSnapshot, so a client can merge both),
their history, and the bodies of the commands on them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from wf_common.events import TaskSnapshot

from wf_board_api.attachments.schemas import AttachmentOut
from wf_board_api.bugs.schemas import BugOut
from wf_board_api.schemas import Body

TaskOut = TaskSnapshot


class HandoffOut(BaseModel):
    id: int
    from_stage: str
    to_stage: str
    payload: dict[str, Any]
    notes: str | None
    actor: str
    created_at: datetime
    requires_approval: bool
    approved_at: datetime | None
    approved_by: str | None
    rejected_at: datetime | None
    rejected_by: str | None
    decision_note: str | None


class ExecutionOut(BaseModel):
    id: int
    stage: str
    role: str | None
    attempt: int
    status: str
    result_status: str | None
    result_summary: str | None
    result_details: dict[str, Any] | None
    usage: dict[str, Any] | None
    runner_id: str | None
    feedback: str | None
    queued_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class FeedbackOut(BaseModel):
    id: int
    text: str
    actor: str
    execution_id: int | None
    created_at: datetime
    file: str | None = None
    line: int | None = None


class CostOut(BaseModel):
    """Token totals over all executions of the task (from each execution's `usage`)."""

    executions: int = 0
    llm_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    total_tokens: int = 0
    duration_ms: float = 0
    models: list[str] = Field(default_factory=list)


class TaskDetail(TaskSnapshot):
    handoffs: list[HandoffOut]
    executions: list[ExecutionOut]
    bugs: list[BugOut]
    feedback: list[FeedbackOut]
    attachments: list[AttachmentOut]
    children: list[str]
    cost: CostOut


# Bodies: the same limits as the wf_common.commands models, repeated so /docs shows them.


class IdeaBody(Body):
    text: str = Field(min_length=3, max_length=20_000, examples=["Let users export lists as CSV"])
    priority: int = Field(5, ge=1, le=10)


class ApproveBody(Body):
    note: str = Field("", max_length=5000)


class RejectBody(Body):
    reason: str = Field(min_length=1, max_length=5000)


class EditTaskBody(Body):
    title: str | None = Field(None, min_length=3, max_length=200)
    description: str | None = Field(None, max_length=20_000)
    acceptance_criteria: list[str] | None = None
    priority: int | None = Field(None, ge=1, le=10)
    blocked_by: list[str] | None = Field(None, examples=[["T-001"]])


class FeedbackBody(Body):
    text: str = Field(min_length=1, max_length=20_000)
    file: str | None = Field(None, min_length=1, max_length=500, description="a diff comment's file")
    line: int | None = Field(None, ge=1, description="a diff comment's line (in the new file)")


class MoveBody(Body):
    to_stage: str = Field(min_length=1, max_length=40, examples=["dev"])
