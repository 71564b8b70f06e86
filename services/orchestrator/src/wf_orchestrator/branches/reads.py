"""Reads this package does before its git work, outside a transaction (nothing is locked while git
runs; the transaction that follows locks the task and checks it again)."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.errors import CommandError

from wf_orchestrator.tasks import repo
from wf_orchestrator.tasks.rows import ProjectRow, TaskRow


async def project_and_task(engine: AsyncEngine, slug: str, key: str) -> tuple[ProjectRow, TaskRow]:
    async with engine.connect() as conn:
        found = await repo.task_in_project(conn, slug, key, lock=False)
        if found is None and await repo.project_by_slug(conn, slug) is None:
            raise CommandError("not_found", f"there is no project {slug!r}; `wf project list` shows them")
    if found is None:
        raise CommandError("not_found", f"there is no task {key} in project {slug!r}")
    return found[0], found[1]
