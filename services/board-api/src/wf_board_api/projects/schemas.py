"""Projects as the API shows them, and the body that creates one."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

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
    # The same limits as wf_common.commands.CreateProject, repeated so /docs shows them.
    slug: str = Field(pattern=r"^[a-z0-9][a-z0-9-]{0,39}$", examples=["listsnap"])
    name: str | None = Field(None, max_length=200)
    workspace: str = Field(min_length=1, description="path of the project's git working tree")
    test_command: str | None = Field(None, min_length=1, max_length=1000, examples=["python -m pytest"])
