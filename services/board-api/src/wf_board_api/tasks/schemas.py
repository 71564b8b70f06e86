"""Tasks as the API shows them (the event stream's TaskSnapshot, so a client can merge both),
their history, and the bodies of the commands on them."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from wf_common.events import TaskSnapshot
from wf_common.fields import (
    Criterion,
    FeedbackText,
    IdeaText,
    LongText,
    Note,
    Reason,
    RepoPath,
    StageName,
    TaskKey,
    Title,
)
from wf_common.text import ITEMS_MAX

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
    cost_usd: float = 0  # money of the priced executions (config cost.prices)


class TaskDetail(TaskSnapshot):
    handoffs: list[HandoffOut]
    executions: list[ExecutionOut]
    bugs: list[BugOut]
    feedback: list[FeedbackOut]
    attachments: list[AttachmentOut]
    children: list[str]
    cost: CostOut


# Bodies: the field types of the wf_common.commands models, so the schema states their rules.


class IdeaBody(Body):
    text: IdeaText = Field(examples=["Let users export lists as CSV"])
    priority: int = Field(5, ge=1, le=10)


class ApproveBody(Body):
    note: Note = ""


class RejectBody(Body):
    reason: Reason


class EditTaskBody(Body):
    """The fields to change, at least one; a field left out stays as it is (null is not a value)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    # Optional, never null (`_present` refuses null): the default None stands for "left out" and is
    # never validated, so the schema shows each field as its one type, not "or null".
    title: Title = None  # type: ignore[assignment]
    description: LongText = None  # type: ignore[assignment]
    acceptance_criteria: Annotated[list[Criterion], Field(max_length=ITEMS_MAX)] = None  # type: ignore[assignment]
    priority: Annotated[int, Field(ge=1, le=10)] = None  # type: ignore[assignment]
    blocked_by: Annotated[list[TaskKey], Field(max_length=ITEMS_MAX, examples=[["T-001"]])] = None  # type: ignore[assignment]

    @model_validator(mode="before")
    @classmethod
    def _present(cls, data: Any) -> Any:
        if isinstance(data, dict):
            if not data:
                raise ValueError(f"give at least one of {sorted(cls.model_fields)} to change")
            nulls = sorted(str(k) for k, v in data.items() if v is None)
            if nulls:
                raise ValueError(f"{', '.join(nulls)}: leave a field out to keep it; null is not a value")
        return data


class FeedbackBody(Body):
    text: FeedbackText
    file: RepoPath | None = Field(None, description="a diff comment's file")
    line: int | None = Field(None, ge=1, le=10_000_000, description="a diff comment's line (in the new file)")


class MoveBody(Body):
    to_stage: StageName = Field(examples=["dev"])
