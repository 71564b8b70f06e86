"""Tasks: list and show them (from the database), and the commands on them (to the orchestrator)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from wf_common.commands import AddFeedback, Approve, EditTask, MoveTask, Reject, RetryTask, SubmitIdea
from wf_common.fields import Slug, TaskKey
from wf_common.states import TaskState

from wf_board_api.gateway import build_command
from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES
from wf_board_api.state import Actor, Db, Gateway, State
from wf_board_api.tasks import service
from wf_board_api.tasks.schemas import (
    ApproveBody,
    EditTaskBody,
    ExecutionOut,
    FeedbackBody,
    IdeaBody,
    MoveBody,
    RejectBody,
    TaskDetail,
    TaskOut,
)

router = APIRouter(tags=["tasks"])

TASK_PATH = "/api/projects/{slug}/tasks/{key}"
# Where each command field came from, so a refused value is reported where the client wrote it.
ON_TASK = {"project": "path.slug", "task_key": "path.key"}


@router.get("/api/tasks", response_model=list[TaskOut], responses=ERROR_RESPONSES)
async def list_tasks(
    db: Db,
    state: State,
    project: Annotated[Slug | None, Query(description="project slug")] = None,
    stage: Annotated[str | None, Query(description="board column, e.g. dev (the schema lists them)")] = None,
    task_state: Annotated[TaskState | None, Query(alias="state")] = None,
    key: Annotated[TaskKey | None, Query(description="task key; finds the project of a key")] = None,
) -> list[TaskOut]:
    """Tasks in creation order, each like the `task` of a task event (wf_common.events.TaskSnapshot)."""
    service.check_stage(stage, state.settings.stages())
    return await service.list_tasks(
        db, project=project, stage=stage, state=task_state.value if task_state else None, key=key
    )


@router.get(TASK_PATH, response_model=TaskDetail, responses=ERROR_RESPONSES)
async def get_task(slug: Slug, key: TaskKey, db: Db) -> TaskDetail:
    """The task with its handoffs, executions, bugs (killed ones too), feedback, files, subtasks and cost."""
    return await service.task_detail(db, slug, key)


@router.get(f"{TASK_PATH}/executions", response_model=list[ExecutionOut], responses=ERROR_RESPONSES)
async def list_executions(slug: Slug, key: TaskKey, db: Db) -> list[ExecutionOut]:
    return await service.list_executions(db, slug, key)


@router.post("/api/projects/{slug}/ideas", status_code=201, responses=COMMAND_RESPONSES)
async def submit_idea(slug: Slug, body: IdeaBody, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Put an idea in the backlog; the PM agent breaks it down into tasks."""
    command = build_command(
        SubmitIdea, {"project": "path.slug"}, project=slug, **body.model_dump(), actor=actor
    )
    return await gateway.send(command)


@router.post(f"{TASK_PATH}/approve", responses=COMMAND_RESPONSES)
async def approve(
    slug: Slug,
    key: TaskKey,
    actor: Actor,
    gateway: Gateway,
    body: Annotated[ApproveBody | None, Body()] = None,
) -> dict[str, Any]:
    """Let a task waiting at a gate (the PM's breakdown, a deploy) go on. The body is optional."""
    note = body.note if body else ""
    command = build_command(Approve, ON_TASK, project=slug, task_key=key, note=note, actor=actor)
    return await gateway.send(command)


@router.post(f"{TASK_PATH}/reject", responses=COMMAND_RESPONSES)
async def reject(
    slug: Slug, key: TaskKey, body: RejectBody, actor: Actor, gateway: Gateway
) -> dict[str, Any]:
    command = build_command(Reject, ON_TASK, project=slug, task_key=key, reason=body.reason, actor=actor)
    return await gateway.send(command)


@router.patch(TASK_PATH, responses=COMMAND_RESPONSES)
async def edit_task(
    slug: Slug, key: TaskKey, body: EditTaskBody, actor: Actor, gateway: Gateway
) -> dict[str, Any]:
    """Change the given fields; fields left out stay as they are."""
    changes = body.model_dump(exclude_unset=True)
    command = build_command(EditTask, ON_TASK, project=slug, task_key=key, **changes, actor=actor)
    return await gateway.send(command)


@router.post(f"{TASK_PATH}/feedback", status_code=201, responses=COMMAND_RESPONSES)
async def add_feedback(
    slug: Slug, key: TaskKey, body: FeedbackBody, actor: Actor, gateway: Gateway
) -> dict[str, Any]:
    """A note the agent of the task's next execution receives."""
    command = build_command(
        AddFeedback, ON_TASK, project=slug, task_key=key, **body.model_dump(), actor=actor
    )
    return await gateway.send(command)


@router.post(f"{TASK_PATH}/move", responses=COMMAND_RESPONSES)
async def move(slug: Slug, key: TaskKey, body: MoveBody, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Move a card by hand: back to an earlier work stage (rework) or within its stage (requeue).
    Forward moves, moves into backlog/done and moves of running or gated tasks are refused (409)."""
    command = build_command(
        MoveTask, ON_TASK, project=slug, task_key=key, to_stage=body.to_stage, actor=actor
    )
    return await gateway.send(command)


@router.post(f"{TASK_PATH}/retry", responses=COMMAND_RESPONSES)
async def retry(slug: Slug, key: TaskKey, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Run the task's current stage again after it failed or needed a human."""
    command = build_command(RetryTask, ON_TASK, project=slug, task_key=key, actor=actor)
    return await gateway.send(command)
