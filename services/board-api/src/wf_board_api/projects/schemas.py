"""Projects as the API shows them, and the body that creates one."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel
from wf_common.fields import ProjectName, Slug, TestCommand, Workspace

from wf_board_api.schemas import Body


class ProjectOut(BaseModel):
    slug: str
    name: str
    workspace: str
    test_command: str
    created_by: str
    created_at: datetime


class ProjectDetail(ProjectOut):
    tasks_by_stage: dict[str, int]
    tasks_by_state: dict[str, int]
    open_bugs: int


class CreateProjectBody(Body):
    # The very types of wf_common.commands.CreateProject, so the schema states its rules.
    slug: Slug
    name: ProjectName | None = None
    workspace: Workspace
    test_command: TestCommand | None = None
