"""Queries on projects."""

from __future__ import annotations

from sqlalchemy import RowMapping, func, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import bugs, projects, tasks

_COLUMNS = (
    projects.c.id,
    projects.c.slug,
    projects.c.name,
    projects.c.workspace,
    projects.c.test_command,
    projects.c.created_by,
    projects.c.created_at,
)


async def list_projects(conn: AsyncConnection) -> list[RowMapping]:
    result = await conn.execute(select(*_COLUMNS).order_by(projects.c.slug))
    return list(result.mappings().all())


async def get_project(conn: AsyncConnection, slug: str) -> RowMapping | None:
    result = await conn.execute(select(*_COLUMNS).where(projects.c.slug == slug))
    return result.mappings().first()


async def task_counts(conn: AsyncConnection, project_id: int, column: str) -> dict[str, int]:
    col = tasks.c[column]
    result = await conn.execute(
        select(col, func.count()).where(tasks.c.project_id == project_id).group_by(col).order_by(col)
    )
    return {str(k): int(n) for k, n in result.all()}


async def open_bug_count(conn: AsyncConnection, project_id: int) -> int:
    result = await conn.execute(
        select(func.count()).where(bugs.c.project_id == project_id, bugs.c.status == "open")
    )
    return int(result.scalar_one())
