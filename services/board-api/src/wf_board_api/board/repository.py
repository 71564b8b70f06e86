"""The board's one query: every task of the board as TaskSnapshot JSON, built by PostgreSQL per column,
and the version of what it shows (`version`), so an unchanged board is not built again.

With thousands of tasks, decoding rows into Python objects and encoding them again costs far more
than the query (docs/performance.md, board_read); PostgreSQL builds the same JSON in C instead. The
objects have exactly TaskSnapshot's fields, in its order and its encoding (the datetime as pydantic
writes it: UTC, `Z`, microseconds only when not zero); tests/board/test_reads.py compares the two.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection

_COLUMNS = text(
    """
SELECT t.current_stage AS stage,
  -- where the column's first task sits in (project, creation) order: unknown stages are shown in it
  min(p.slug || chr(1) || lpad(t.id::text, 12, '0')) AS first,
  json_agg(json_build_object(
    'project', p.slug, 'key', t.task_key, 'title', t.title, 'description', t.description,
    'acceptance_criteria', coalesce(t.acceptance_criteria, '[]'::jsonb), 'stage', t.current_stage,
    'state', t.state, 'priority', t.priority,
    'blocked_by', ARRAY(SELECT b.task_key FROM unnest(t.blocked_by) WITH ORDINALITY AS u(id, n)
                        JOIN tasks b ON b.id = u.id ORDER BY u.n),
    'parent', par.task_key, 'rework_count', t.rework_count, 'created_by', t.created_by,
    'status_reason', t.status_reason,
    -- pydantic's encoding: microseconds only when not zero
    'updated_at',
      replace(to_char(t.updated_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US'), '.000000', '') || 'Z'
  ) ORDER BY p.slug, t.id)::text AS tasks
FROM tasks t
JOIN projects p ON p.id = t.project_id
LEFT JOIN tasks par ON par.id = t.parent_id
WHERE CAST(:project_id AS integer) IS NULL OR t.project_id = :project_id
GROUP BY t.current_stage
"""
)


# Every row's version: a row's xmin changes with each update, a row inserted or deleted changes the
# list. The same list is the same rows as they were (read in the same snapshot as the columns).
_VERSION = text(
    """
SELECT md5(coalesce((SELECT string_agg(t.id || ':' || t.xmin::text, ',' ORDER BY t.id) FROM tasks t
                     WHERE CAST(:project_id AS integer) IS NULL OR t.project_id = :project_id), '')
           || '/' || coalesce((SELECT string_agg(p.id || ':' || p.xmin::text, ',' ORDER BY p.id)
                               FROM projects p), ''))
"""
)


@dataclass(frozen=True, slots=True)
class Column:
    stage: str
    first: str  # sort key of its first task
    tasks_json: str  # a JSON array of TaskSnapshot objects


async def columns(conn: AsyncConnection, project_id: int | None) -> list[Column]:
    """The non-empty columns, each with its tasks in (project, creation) order."""
    result = await conn.execute(_COLUMNS, {"project_id": project_id})
    return [Column(r.stage, r.first, r.tasks) for r in result]


async def version(conn: AsyncConnection, project_id: int | None) -> str:
    """Changes whenever a task of the board (or a project) is written, inserted or deleted."""
    return str(await conn.scalar(_VERSION, {"project_id": project_id}))
