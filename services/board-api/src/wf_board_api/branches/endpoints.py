"""Pause and resume a project or a task, roll a task back to a checkpoint, list its checkpoints."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from wf_common.commands import ListCheckpoints, Pause, Resume, Rollback
from wf_common.fields import Slug, TaskKey

from wf_board_api.branches.schemas import RollbackBody
from wf_board_api.gateway import build_command
from wf_board_api.schemas import COMMAND_RESPONSES
from wf_board_api.state import Actor, Gateway

router = APIRouter(tags=["branches"])

PROJECT_PATH = "/api/projects/{slug}"
TASK_PATH = "/api/projects/{slug}/tasks/{key}"
ON_PROJECT = {"project": "path.slug"}
ON_TASK = {"project": "path.slug", "task_key": "path.key"}


@router.post(f"{PROJECT_PATH}/pause", responses=COMMAND_RESPONSES)
async def pause_project(slug: Slug, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Stop dispatching the project's tasks and freeze its running jobs before their next model turn."""
    return await gateway.send(build_command(Pause, ON_PROJECT, project=slug, actor=actor))


@router.post(f"{PROJECT_PATH}/resume", responses=COMMAND_RESPONSES)
async def resume_project(slug: Slug, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    return await gateway.send(build_command(Resume, ON_PROJECT, project=slug, actor=actor))


@router.post(f"{TASK_PATH}/pause", responses=COMMAND_RESPONSES)
async def pause_task(slug: Slug, key: TaskKey, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Hold the task: no new job, and a running one freezes before its next model turn."""
    return await gateway.send(build_command(Pause, ON_TASK, project=slug, task_key=key, actor=actor))


@router.post(f"{TASK_PATH}/resume", responses=COMMAND_RESPONSES)
async def resume_task(slug: Slug, key: TaskKey, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    return await gateway.send(build_command(Resume, ON_TASK, project=slug, task_key=key, actor=actor))


@router.post(f"{TASK_PATH}/rollback", responses=COMMAND_RESPONSES)
async def rollback(
    slug: Slug, key: TaskKey, body: RollbackBody, actor: Actor, gateway: Gateway
) -> dict[str, Any]:
    """Reset the task's branch to the checkpoint before `to_stage` (what was there is kept as a
    `<n>-rollback` checkpoint) and send the task back to that stage."""
    command = build_command(
        Rollback, ON_TASK, project=slug, task_key=key, to_stage=body.to_stage, actor=actor
    )
    return await gateway.send(command)


@router.get(f"{TASK_PATH}/checkpoints", responses=COMMAND_RESPONSES)
async def checkpoints(slug: Slug, key: TaskKey, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """`{task_key, checkpoints: [{number, stage, ref, sha, at}]}`, oldest first (read from git by the
    orchestrator, which has the repository)."""
    return await gateway.send(
        build_command(ListCheckpoints, ON_TASK, project=slug, task_key=key, actor=actor)
    )
