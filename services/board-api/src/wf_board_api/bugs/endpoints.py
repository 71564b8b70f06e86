"""Bugs: list them, and kill one (a soft delete: agents stop receiving it)."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Query
from wf_common.commands import KillBug
from wf_common.fields import BugKey, Slug, TaskKey

from wf_board_api.bugs import service
from wf_board_api.bugs.schemas import BugOut, KillBugBody
from wf_board_api.gateway import build_command
from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES
from wf_board_api.state import Actor, Db, Gateway

router = APIRouter(tags=["bugs"])


@router.get("/api/bugs", response_model=list[BugOut], responses=ERROR_RESPONSES)
async def list_bugs(
    db: Db,
    project: Annotated[Slug | None, Query(description="project slug")] = None,
    task: Annotated[TaskKey | None, Query(description="task key, e.g. T-002")] = None,
    include_killed: bool = False,
) -> list[BugOut]:
    return await service.list_bugs(db, project=project, task=task, include_killed=include_killed)


@router.post("/api/projects/{slug}/bugs/{key}/kill", responses=COMMAND_RESPONSES)
async def kill_bug(
    slug: Slug,
    key: BugKey,
    actor: Actor,
    gateway: Gateway,
    body: Annotated[KillBugBody | None, Body()] = None,
) -> dict[str, Any]:
    """Mark a bug as not worth fixing. The body is optional."""
    reason = body.reason if body else ""
    command = build_command(
        KillBug,
        {"project": "path.slug", "bug_key": "path.key"},
        project=slug,
        bug_key=key,
        reason=reason,
        actor=actor,
    )
    return await gateway.send(command)
