"""Reads this package does before its git work, outside a transaction (nothing is locked while git
runs; the transaction that follows locks the task and checks it again)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.db.tables import tasks
from wf_common.errors import CommandError

from wf_orchestrator.tasks import repo
from wf_orchestrator.tasks.rows import ProjectRow, TaskRow


async def project_and_task(engine: AsyncEngine, slug: str, key: str) -> tuple[ProjectRow, TaskRow]:
    async with engine.connect() as conn:
        project = await repo.project_by_slug(conn, slug)
        if project is None:
            raise CommandError("not_found", f"there is no project {slug!r}; `wf project list` shows them")
        row = (
            (
                await conn.execute(
                    select(tasks).where(tasks.c.project_id == project.id, tasks.c.task_key == key)
                )
            )
            .mappings()
            .first()
        )
    if row is None:
        raise CommandError("not_found", f"there is no task {key} in project {slug!r}")
    return project, TaskRow.of(row)
