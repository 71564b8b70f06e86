"""Listing bugs."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from wf_board_api.bugs import repository
from wf_board_api.bugs.schemas import BugOut
from wf_board_api.projects.service import require_project_id
from wf_board_api.tasks.service import normalize_key


async def list_bugs(
    conn: AsyncConnection, *, project: str | None, task: str | None, include_killed: bool
) -> list[BugOut]:
    project_id = await require_project_id(conn, project) if project else None
    rows = await repository.list_bugs(
        conn,
        project_id=project_id,
        task_key=normalize_key(task) if task else None,
        include_killed=include_killed,
    )
    return [BugOut.model_validate(dict(r)) for r in rows]
