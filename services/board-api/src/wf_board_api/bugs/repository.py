"""Queries on bugs."""

from __future__ import annotations

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import bugs, projects, tasks


async def list_bugs(
    conn: AsyncConnection,
    *,
    project_id: int | None = None,
    task_id: int | None = None,
    task_key: str | None = None,
    include_killed: bool = False,
) -> list[RowMapping]:
    query = (
        select(
            projects.c.slug.label("project"),
            bugs.c.bug_key.label("key"),
            tasks.c.task_key,
            bugs.c.title,
            bugs.c.description,
            bugs.c.source_stage,
            bugs.c.status,
            bugs.c.reproduction,
            bugs.c.created_by,
            bugs.c.created_at,
            bugs.c.fixed_at,
            bugs.c.killed_at,
            bugs.c.killed_by,
            bugs.c.kill_reason,
        )
        .join(projects, projects.c.id == bugs.c.project_id)
        .join(tasks, tasks.c.id == bugs.c.task_id)
        .order_by(bugs.c.id)
    )
    if project_id is not None:
        query = query.where(bugs.c.project_id == project_id)
    if task_id is not None:
        query = query.where(bugs.c.task_id == task_id)
    if task_key is not None:
        query = query.where(tasks.c.task_key == task_key)
    if not include_killed:
        query = query.where(bugs.c.status != "killed")
    return list((await conn.execute(query)).mappings().all())
