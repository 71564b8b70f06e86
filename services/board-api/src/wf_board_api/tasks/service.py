"""Reading tasks: rows → TaskSnapshot (blocked_by ids become keys), detail assembly and cost."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import RowMapping
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.events import TaskSnapshot

from wf_board_api.attachments import repository as attachments_repo
from wf_board_api.attachments.schemas import AttachmentOut
from wf_board_api.bugs import repository as bugs_repo
from wf_board_api.bugs.schemas import BugOut
from wf_board_api.errors import NotFound, field_error
from wf_board_api.projects.service import require_project_id
from wf_board_api.tasks import repository
from wf_board_api.tasks.schemas import CostOut, ExecutionOut, FeedbackOut, HandoffOut, TaskDetail


def normalize_key(key: str) -> str:
    """Keys are written T-001; accept t-001 in URLs the way the commands do."""
    return key.strip().upper()


async def to_snapshots(conn: AsyncConnection, rows: Sequence[RowMapping]) -> list[TaskSnapshot]:
    keys = await repository.keys_by_id(conn, (i for r in rows for i in (r["blocked_by"] or ())))
    return [_snapshot(r, keys) for r in rows]


def _snapshot(row: RowMapping, keys: Mapping[int, str]) -> TaskSnapshot:
    return TaskSnapshot(
        project=row["project"],
        key=row["key"],
        title=row["title"],
        description=row["description"],
        acceptance_criteria=list(row["acceptance_criteria"] or []),
        stage=row["stage"],
        state=row["state"],
        priority=row["priority"],
        # The column holds task ids; an id with no task (none should exist) cannot be shown as a key.
        blocked_by=[keys[i] for i in (row["blocked_by"] or ()) if i in keys],
        parent=row["parent"],
        rework_count=row["rework_count"],
        created_by=row["created_by"],
        status_reason=row["status_reason"],
        updated_at=row["updated_at"],
    )


def check_stage(stage: str | None, stages: Sequence[str]) -> None:
    if stage is not None and stage not in stages:
        raise field_error("query.stage", f"unknown stage {stage!r}; the pipeline has {list(stages)}")


async def list_tasks(
    conn: AsyncConnection,
    *,
    project: str | None,
    stage: str | None,
    state: str | None,
    key: str | None,
) -> list[TaskSnapshot]:
    project_id = await require_project_id(conn, project) if project else None
    rows = await repository.list_tasks(
        conn, project_id=project_id, stage=stage, state=state, key=normalize_key(key) if key else None
    )
    return await to_snapshots(conn, rows)


async def require_task(conn: AsyncConnection, slug: str, key: str) -> RowMapping:
    project_id = await require_project_id(conn, slug)
    key = normalize_key(key)
    rows = await repository.list_tasks(conn, project_id=project_id, key=key)
    if not rows:
        raise NotFound(f"task {key!r} not found in project {slug!r}")
    return rows[0]


async def list_executions(conn: AsyncConnection, slug: str, key: str) -> list[ExecutionOut]:
    task = await require_task(conn, slug, key)
    return [ExecutionOut.model_validate(dict(r)) for r in await repository.list_executions(conn, task["id"])]


async def task_detail(conn: AsyncConnection, slug: str, key: str) -> TaskDetail:
    task = await require_task(conn, slug, key)
    task_id = int(task["id"])
    (snapshot,) = await to_snapshots(conn, [task])
    executions = [
        ExecutionOut.model_validate(dict(r)) for r in await repository.list_executions(conn, task_id)
    ]
    return TaskDetail(
        **snapshot.model_dump(),
        handoffs=[HandoffOut.model_validate(dict(r)) for r in await repository.list_handoffs(conn, task_id)],
        executions=executions,
        bugs=[
            BugOut.model_validate(dict(r))
            for r in await bugs_repo.list_bugs(conn, task_id=task_id, include_killed=True)
        ],
        feedback=[FeedbackOut.model_validate(dict(r)) for r in await repository.list_feedback(conn, task_id)],
        attachments=[
            AttachmentOut(**dict(r), url=f"/api/attachments/{r['id']}")
            for r in await attachments_repo.for_task(conn, task_id)
        ],
        children=await repository.child_keys(conn, task_id),
        cost=total_cost(e.usage for e in executions),
    )


def total_cost(usages: Iterable[Mapping[str, Any] | None]) -> CostOut:
    """Sum wf_common.jobs.Usage dicts; a missing or malformed number counts as 0, never as an error."""
    cost = CostOut()
    models: list[str] = []
    for usage in usages:
        cost.executions += 1
        if not usage:
            continue
        cost.llm_calls += _int(usage.get("llm_calls"))
        cost.prompt_tokens += _int(usage.get("prompt_tokens"))
        cost.completion_tokens += _int(usage.get("completion_tokens"))
        cost.duration_ms += _float(usage.get("duration_ms"))
        cost.cost_usd += _float(usage.get("cost_usd"))
        model = usage.get("model")
        if isinstance(model, str) and model and model not in models:
            models.append(model)
    cost.total_tokens = cost.prompt_tokens + cost.completion_tokens
    cost.cost_usd = round(cost.cost_usd, 6)
    cost.models = models
    return cost


def _int(value: object) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _float(value: object) -> float:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0.0
