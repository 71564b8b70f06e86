"""Apply a runner's `Result` (at most once) and fail executions that can no longer finish."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.db.tables import bugs, executions, tasks
from wf_common.events import ExecutionFinished, ResultRejected
from wf_common.jobs import Result, Usage, utcnow
from wf_common.states import ExecutionStatus, TaskState

from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline import results as result_facts
from wf_orchestrator.pipeline.model import Decision, Place
from wf_orchestrator.tasks import transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.repo import blockers_done_expr
from wf_orchestrator.tasks.rows import TaskRow
from wf_orchestrator.uow import UnitOfWork

log = logging.getLogger(__name__)

# Paused: a runner holds the job (wf pause); its result still applies once it resumes.
ACTIVE = (ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value, ExecutionStatus.PAUSED.value)


# The execution and its task, both locked. The task lock serialises every writer of the task; the
# execution lock matters too: a transaction that waited gets the rows' latest versions only for the
# rows it locks (a duplicate result must see that the first one already ended the execution).
_LOCK = (
    select(
        executions.c.id.label("execution_id"),
        executions.c.status.label("execution_status"),
        executions.c.stage.label("execution_stage"),
        executions.c.idempotency_key,
        tasks,
        blockers_done_expr(tasks.c.blocked_by).label("blockers_done"),
        select(func.count())
        .where(
            bugs.c.task_id == tasks.c.id, bugs.c.source_stage == executions.c.stage, bugs.c.status == "open"
        )
        .scalar_subquery()
        .label("open_bugs"),
    )
    .select_from(executions.join(tasks, tasks.c.id == executions.c.task_id))
    .where(executions.c.id == bindparam("execution_id"))
    .with_for_update(of=[tasks, executions])
)


async def _lock(conn: AsyncConnection, execution_id: int) -> tuple[dict[str, Any], TaskRow, bool] | None:
    row = (await conn.execute(_LOCK, {"execution_id": execution_id})).mappings().first()
    if row is None:
        return None
    return dict(row), TaskRow.of(row), bool(row["blockers_done"])


async def apply_result(uow: UnitOfWork, ctx: Context, result: Result) -> bool:
    """Record the result and move the task. False when there was nothing to apply (a duplicate, or an
    execution that already ended by timeout or a human)."""
    found = await _lock(uow.conn, result.job_id)
    if found is None:
        log.warning("result for unknown execution %s (%s): ignored", result.job_id, result.idempotency_key)
        return False
    ex, task, blockers_done = found
    if ex["idempotency_key"] != result.idempotency_key:
        log.warning(
            "result %s does not match execution %s (%s): ignored",
            result.idempotency_key,
            result.job_id,
            ex["idempotency_key"],
        )
        return False
    if ex["execution_status"] not in ACTIVE:
        log.info(
            "result %s already applied (execution is %s)", result.idempotency_key, ex["execution_status"]
        )
        return False
    uow.after_commit.append(lambda: ctx.memory.ended(result.job_id))
    now = utcnow()
    stage = ex["execution_stage"]
    cfg = ctx.pipeline.stage(stage)
    actor = f"agent:{cfg.agent}" if cfg and cfg.agent else "system"
    current = task.current_execution_id == result.job_id and task.current_stage == stage
    facts = result_facts.facts(result)
    breakdown = tuple(result.breakdown.tasks) if result.breakdown else ()
    if cfg is None:
        # The configuration changed under a running job: a human decides where the task goes.
        why = f"stage {stage!r} is no longer in the pipeline (config.yaml changed while it ran)"
        decision = Decision(
            place=Place(stage, TaskState.NEEDS_HUMAN, why), execution_status=ExecutionStatus.COMPLETED
        )
    else:
        decision = machine.on_result(ctx.pipeline, task.facts(blockers_done=blockers_done), facts, breakdown)
    if not (decision.execution_status is not None):
        raise RuntimeError("invariant broken: decision.execution_status is not None")
    slug = (await ctx.project(uow.conn, task.project_id)).slug
    uow.emit(
        result_facts.finished_event(result, project=slug, task_key=task.task_key, actor=actor, stage=stage)
    )
    record = {
        "id": result.job_id,
        "status": decision.execution_status.value,
        **result_facts.execution_record(result),
    }
    if current:
        await transitions.apply(
            uow,
            ctx,
            task,
            decision,
            actor=actor,
            now=now,
            execution_id=result.job_id,
            execution=record,
            may_have_bugs=bool(ex["open_bugs"]),
            last=True,
        )
    else:
        # The task moved on without this execution (should not happen): keep the record only.
        log.warning(
            "result %s is for an execution that is not %s's current one",
            result.idempotency_key,
            task.task_key,
        )
        await uow.conn.execute(
            update(executions)
            .where(executions.c.id == result.job_id)
            .values({k: v for k, v in record.items() if k != "id"})
        )
    return True


async def fail_execution(
    uow: UnitOfWork,
    ctx: Context,
    execution_id: int,
    reason: str,
    *,
    kind: str,
    rejected_after: int | None = None,
) -> bool:
    """End an execution that will never report (out of deliveries, overdue, or its Result could not
    be applied `rejected_after` times): its task becomes failed with `reason`, retryable. False when
    the execution had already ended."""
    found = await _lock(uow.conn, execution_id)
    if found is None:
        return False
    ex, task, _ = found
    if ex["execution_status"] not in ACTIVE:
        return False
    uow.after_commit.append(lambda: ctx.memory.ended(execution_id))
    now: datetime = utcnow()
    slug = (await ctx.project(uow.conn, task.project_id)).slug
    if rejected_after is not None:
        uow.emit(
            ResultRejected(
                project=slug,
                task_key=task.task_key,
                execution_id=execution_id,
                stage=ex["execution_stage"],
                reason=reason,
                deliveries=rejected_after,
            )
        )
    uow.emit(
        ExecutionFinished(
            project=slug,
            task_key=task.task_key,
            execution_id=execution_id,
            stage=ex["execution_stage"],
            status="error",
            summary=reason,
            usage=Usage(),
        )
    )
    record = {
        "id": execution_id,
        "status": ExecutionStatus.FAILED.value,
        "result_status": "error",
        "result_summary": reason,
        "result_details": {"error": {"kind": kind, "message": reason, "retryable": True}},
        "completed_at": now,
    }
    if task.current_execution_id == execution_id:
        await transitions.apply(
            uow,
            ctx,
            task,
            machine.on_timeout(task.facts(), reason),
            actor="system",
            now=now,
            execution_id=execution_id,
            execution=record,
            may_have_bugs=False,
        )
    else:
        await uow.conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values({k: v for k, v in record.items() if k != "id"})
        )
    return True
