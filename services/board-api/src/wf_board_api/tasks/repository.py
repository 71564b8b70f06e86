"""Queries on tasks and their history (handoffs, executions, feedback)."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import RowMapping, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import agents, executions, feedback, handoffs, projects, tasks

_parent = tasks.alias("parent")


async def list_tasks(
    conn: AsyncConnection,
    *,
    project_id: int | None = None,
    stage: str | None = None,
    state: str | None = None,
    key: str | None = None,
) -> list[RowMapping]:
    query = (
        select(
            tasks.c.id,
            projects.c.slug.label("project"),
            tasks.c.task_key.label("key"),
            tasks.c.title,
            tasks.c.description,
            tasks.c.acceptance_criteria,
            tasks.c.current_stage.label("stage"),
            tasks.c.state,
            tasks.c.priority,
            tasks.c.blocked_by,
            _parent.c.task_key.label("parent"),
            tasks.c.rework_count,
            tasks.c.created_by,
            tasks.c.status_reason,
            tasks.c.updated_at,
        )
        .join(projects, projects.c.id == tasks.c.project_id)
        .outerjoin(_parent, _parent.c.id == tasks.c.parent_id)
        # Creation order (T-001, T-002, ...); ordering by the key string would put T-1000 before T-200.
        .order_by(projects.c.slug, tasks.c.id)
    )
    if project_id is not None:
        query = query.where(tasks.c.project_id == project_id)
    if stage is not None:
        query = query.where(tasks.c.current_stage == stage)
    if state is not None:
        query = query.where(tasks.c.state == state)
    if key is not None:
        query = query.where(tasks.c.task_key == key)
    return list((await conn.execute(query)).mappings().all())


async def keys_by_id(conn: AsyncConnection, ids: Iterable[int]) -> dict[int, str]:
    wanted = sorted(set(ids))
    if not wanted:
        return {}
    result = await conn.execute(select(tasks.c.id, tasks.c.task_key).where(tasks.c.id.in_(wanted)))
    return {int(i): str(k) for i, k in result.all()}


async def child_keys(conn: AsyncConnection, task_id: int) -> list[str]:
    result = await conn.execute(
        select(tasks.c.task_key).where(tasks.c.parent_id == task_id).order_by(tasks.c.id)
    )
    return [str(k) for k in result.scalars().all()]


async def list_handoffs(conn: AsyncConnection, task_id: int) -> list[RowMapping]:
    query = (
        select(
            handoffs.c.id,
            handoffs.c.from_stage,
            handoffs.c.to_stage,
            handoffs.c.payload,
            handoffs.c.notes,
            handoffs.c.actor,
            handoffs.c.created_at,
            handoffs.c.requires_approval,
            handoffs.c.approved_at,
            handoffs.c.approved_by,
            handoffs.c.rejected_at,
            handoffs.c.rejected_by,
            handoffs.c.decision_note,
        )
        .where(handoffs.c.task_id == task_id)
        .order_by(handoffs.c.id)
    )
    return list((await conn.execute(query)).mappings().all())


async def list_executions(conn: AsyncConnection, task_id: int) -> list[RowMapping]:
    query = (
        select(
            executions.c.id,
            executions.c.stage,
            agents.c.role,
            executions.c.attempt,
            executions.c.status,
            executions.c.result_status,
            executions.c.result_summary,
            executions.c.result_details,
            executions.c.usage,
            executions.c.runner_id,
            executions.c.feedback,
            executions.c.queued_at,
            executions.c.started_at,
            executions.c.completed_at,
        )
        .outerjoin(agents, agents.c.id == executions.c.agent_id)
        .where(executions.c.task_id == task_id)
        .order_by(executions.c.id)
    )
    return list((await conn.execute(query)).mappings().all())


async def list_feedback(conn: AsyncConnection, task_id: int) -> list[RowMapping]:
    query = (
        select(
            feedback.c.id,
            feedback.c.text,
            feedback.c.actor,
            feedback.c.execution_id,
            feedback.c.created_at,
            feedback.c.file,
            feedback.c.line,
        )
        .where(feedback.c.task_id == task_id)
        .order_by(feedback.c.id)
    )
    return list((await conn.execute(query)).mappings().all())
