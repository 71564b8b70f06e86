"""Project look-ups every domain needs: a slug the client named must exist."""

from __future__ import annotations

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection

from wf_board_api.errors import NotFound
from wf_board_api.projects import repository
from wf_board_api.projects.schemas import ProjectDetail, ProjectOut


async def require_project(conn: AsyncConnection, slug: str) -> RowMapping:
    row = await repository.get_project(conn, slug)
    if row is None:
        raise NotFound(f"project {slug!r} not found; GET /api/projects lists the projects")
    return row


async def require_project_id(conn: AsyncConnection, slug: str) -> int:
    return int((await require_project(conn, slug))["id"])


async def list_projects(conn: AsyncConnection) -> list[ProjectOut]:
    return [ProjectOut.model_validate(dict(r)) for r in await repository.list_projects(conn)]


async def project_detail(conn: AsyncConnection, slug: str) -> ProjectDetail:
    row = await require_project(conn, slug)
    pid = int(row["id"])
    return ProjectDetail(
        **ProjectOut.model_validate(dict(row)).model_dump(),
        tasks_by_stage=await repository.task_counts(conn, pid, "current_stage"),
        tasks_by_state=await repository.task_counts(conn, pid, "state"),
        open_bugs=await repository.open_bug_count(conn, pid),
    )
