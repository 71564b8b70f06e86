"""Aggregates over executions (their ledger columns, migration 0006) and handoffs."""

from __future__ import annotations

from sqlalchemy import RowMapping, text
from sqlalchemy.ext.asyncio import AsyncConnection

# Executions that ended (completed or failed), optionally of one project. Written out in each query.
_ROLES = text(
    """
SELECT a.role, count(*) AS executions,
  avg(EXTRACT(EPOCH FROM (e.completed_at - e.started_at))) AS avg_seconds,
  avg(CASE WHEN e.result_status = 'pass' THEN 1.0 ELSE 0.0 END) AS pass_rate,
  coalesce(sum(e.prompt_tokens), 0) AS prompt_tokens,
  coalesce(sum(e.completion_tokens), 0) AS completion_tokens,
  coalesce(sum(e.cost_usd), 0) AS cost_usd
FROM executions e JOIN agents a ON a.id = e.agent_id JOIN tasks t ON t.id = e.task_id
WHERE e.completed_at IS NOT NULL AND (CAST(:pid AS integer) IS NULL OR t.project_id = :pid)
GROUP BY a.role, a.id ORDER BY a.id
"""
)

_TASKS = text(
    """
SELECT p.slug AS project, t.task_key AS key, t.title, count(*) AS executions,
  coalesce(sum(e.prompt_tokens), 0) AS prompt_tokens,
  coalesce(sum(e.completion_tokens), 0) AS completion_tokens,
  coalesce(sum(e.cost_usd), 0) AS cost_usd,
  coalesce(sum(EXTRACT(EPOCH FROM (e.completed_at - e.started_at))), 0) AS seconds
FROM executions e JOIN tasks t ON t.id = e.task_id JOIN projects p ON p.id = t.project_id
WHERE e.completed_at IS NOT NULL AND (CAST(:pid AS integer) IS NULL OR t.project_id = :pid)
GROUP BY p.slug, t.id, t.task_key, t.title ORDER BY p.slug, t.id
"""
)

_MODELS = text(
    """
SELECT coalesce(e.model, '(unknown)') AS model, count(*) AS executions,
  coalesce(sum(e.prompt_tokens), 0) AS prompt_tokens,
  coalesce(sum(e.completion_tokens), 0) AS completion_tokens,
  coalesce(sum(e.cost_usd), 0) AS cost_usd
FROM executions e JOIN tasks t ON t.id = e.task_id
WHERE e.completed_at IS NOT NULL AND (CAST(:pid AS integer) IS NULL OR t.project_id = :pid)
GROUP BY coalesce(e.model, '(unknown)') ORDER BY 1
"""
)

# Stage moves per hour over the last `hours` hours (hours without any are left out).
_THROUGHPUT = text(
    """
SELECT date_trunc('hour', h.created_at) AS hour, count(*) AS transitions
FROM handoffs h JOIN tasks t ON t.id = h.task_id
WHERE h.created_at >= now() - make_interval(hours => CAST(:hours AS integer))
  AND (CAST(:pid AS integer) IS NULL OR t.project_id = :pid)
GROUP BY 1 ORDER BY 1
"""
)

_RUNNING = text(
    """
SELECT p.slug AS project, t.task_key AS key, e.stage, e.id AS execution_id, e.runner_id, e.started_at
FROM executions e JOIN tasks t ON t.id = e.task_id JOIN projects p ON p.id = t.project_id
WHERE e.status = 'running' AND (CAST(:pid AS integer) IS NULL OR t.project_id = :pid)
ORDER BY e.id
"""
)


async def _all(conn: AsyncConnection, query: object, **params: object) -> list[RowMapping]:
    return list((await conn.execute(query, params)).mappings())  # type: ignore[call-overload]


async def roles(conn: AsyncConnection, pid: int | None) -> list[RowMapping]:
    return await _all(conn, _ROLES, pid=pid)


async def tasks(conn: AsyncConnection, pid: int | None) -> list[RowMapping]:
    return await _all(conn, _TASKS, pid=pid)


async def models(conn: AsyncConnection, pid: int | None) -> list[RowMapping]:
    return await _all(conn, _MODELS, pid=pid)


async def throughput(conn: AsyncConnection, pid: int | None, hours: int) -> list[RowMapping]:
    return await _all(conn, _THROUGHPUT, pid=pid, hours=hours)


async def running(conn: AsyncConnection, pid: int | None) -> list[RowMapping]:
    return await _all(conn, _RUNNING, pid=pid)
