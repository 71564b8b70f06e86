"""Insert workflow rows directly, as the orchestrator would have written them."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import (
    agents,
    attachments,
    bugs,
    executions,
    feedback,
    handoffs,
    projects,
    tasks,
)

T0 = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)


async def _insert(conn: AsyncConnection, table: Any, **values: Any) -> int:
    result = await conn.execute(insert(table).values(**values).returning(table.c.id))
    return int(result.scalar_one())


async def project(conn: AsyncConnection, slug: str = "listsnap", **values: Any) -> int:
    defaults = {"name": slug.title(), "workspace": f"/work/{slug}", "test_command": "python -m pytest"}
    return await _insert(conn, projects, slug=slug, **{**defaults, **values})


async def task(conn: AsyncConnection, project_id: int, key: str, **values: Any) -> int:
    defaults: dict[str, Any] = {"title": f"Task {key}", "current_stage": "dev", "state": "queued"}
    return await _insert(conn, tasks, project_id=project_id, task_key=key, **{**defaults, **values})


async def agent(conn: AsyncConnection, role: str = "dev") -> int:
    """The agent of `role`: the one the migrations made, else a new one."""
    found = (await conn.execute(select(agents.c.id).where(agents.c.role == role))).scalar()
    if found is not None:
        return int(found)
    return await _insert(conn, agents, role=role, display_name=role.upper(), prompt_template="...")


async def execution(
    conn: AsyncConnection, task_id: int, agent_id: int, stage: str, attempt: int, **values: Any
) -> int:
    return await _insert(
        conn,
        executions,
        task_id=task_id,
        agent_id=agent_id,
        stage=stage,
        attempt=attempt,
        idempotency_key=f"{task_id}/{stage}/{attempt}",
        **values,
    )


async def handoff(conn: AsyncConnection, task_id: int, from_stage: str, to_stage: str, **values: Any) -> int:
    values.setdefault("payload", {})
    return await _insert(conn, handoffs, task_id=task_id, from_stage=from_stage, to_stage=to_stage, **values)


async def bug(conn: AsyncConnection, project_id: int, task_id: int, key: str, **values: Any) -> int:
    defaults = {"title": f"Bug {key}", "source_stage": "qa"}
    return await _insert(
        conn, bugs, project_id=project_id, task_id=task_id, bug_key=key, **{**defaults, **values}
    )


async def note(conn: AsyncConnection, task_id: int, text: str, actor: str = "human") -> int:
    return await _insert(conn, feedback, task_id=task_id, text=text, actor=actor)


async def attachment(conn: AsyncConnection, project_id: int, content: bytes, **values: Any) -> int:
    values.setdefault("filename", "log.txt")
    return await _insert(
        conn, attachments, project_id=project_id, content=content, size=len(content), **values
    )
