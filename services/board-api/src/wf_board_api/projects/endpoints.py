"""/api/projects: list, show and create projects."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from wf_common.commands import CreateProject
from wf_common.fields import Slug

from wf_board_api.gateway import build_command
from wf_board_api.projects import service
from wf_board_api.projects.schemas import CreateProjectBody, ProjectDetail, ProjectOut
from wf_board_api.schemas import COMMAND_RESPONSES, ERROR_RESPONSES
from wf_board_api.state import Actor, Db, Gateway

router = APIRouter(prefix="/api/projects", tags=["projects"])


@router.get("", response_model=list[ProjectOut])
async def list_projects(db: Db) -> list[ProjectOut]:
    return await service.list_projects(db)


@router.get("/{slug}", response_model=ProjectDetail, responses=ERROR_RESPONSES)
async def get_project(slug: Slug, db: Db) -> ProjectDetail:
    """The project with how many of its tasks are in each stage and state, and its open bugs."""
    return await service.project_detail(db, slug)


@router.post("", status_code=201, responses=COMMAND_RESPONSES)
async def create_project(body: CreateProjectBody, actor: Actor, gateway: Gateway) -> dict[str, Any]:
    """Ask the orchestrator to create a project; returns what it replied (the new project)."""
    command = build_command(CreateProject, {}, **body.model_dump(), actor=actor)
    return await gateway.send(command)
