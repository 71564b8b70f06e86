"""Periodic housekeeping, every `sweep_interval_seconds`:

- executions running longer than their stage's timeout (+ margin) are failed; the task is retryable;
- safety nets for what a race could leave behind: blocked tasks whose blockers are all done, ideas
  whose tasks are all done, outbox rows whose publication failed;
- a dispatch pass, so nothing waits for a kick that never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from functools import partial

from sqlalchemy import and_, any_, bindparam, exists, select
from wf_common.db.tables import executions, tasks
from wf_common.jobs import utcnow
from wf_common.states import ExecutionStatus, TaskState

from wf_orchestrator.outbox import Outbox
from wf_orchestrator.pipeline import machine, selection
from wf_orchestrator.tasks import repo, transitions
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.outcomes import fail_execution
from wf_orchestrator.uow import Runner, UnitOfWork

log = logging.getLogger(__name__)

OUTBOX_GRACE_SECONDS = 5.0
_child = tasks.alias("child")
# Both name the stage so the (current_stage, state) index finds the few rows instead of a table scan.
_STUCK_BLOCKED = (
    select(tasks.c.id)
    .where(
        tasks.c.current_stage == any_(bindparam("stages")),
        tasks.c.state == TaskState.BLOCKED.value,
        repo.blockers_done_expr(tasks.c.blocked_by),
    )
    .limit(100)
)
_FINISHED_IDEAS = (
    select(tasks.c.id)
    .where(
        tasks.c.current_stage == bindparam("stage"),
        tasks.c.state == TaskState.WAITING_SUBTASKS.value,
        exists().where(_child.c.parent_id == tasks.c.id),
        ~exists().where(
            and_(
                _child.c.parent_id == tasks.c.id,
                _child.c.state.not_in([TaskState.DONE.value, TaskState.CANCELLED.value]),
            )
        ),
    )
    .limit(100)
)


async def _fail(uow: UnitOfWork, *, ctx: Context, execution_id: int, reason: str) -> bool:
    return await fail_execution(uow, ctx, execution_id, reason, kind="timeout")


class Sweeper:
    def __init__(
        self,
        runner: Runner,
        ctx: Context,
        outbox: Outbox,
        kick: Callable[[], None],
        *,
        interval: float,
        timeout_margin: float,
    ) -> None:
        self._runner = runner
        self._ctx = ctx
        self._outbox = outbox
        self._kick = kick
        self._interval = interval
        self._margin = timeout_margin

    async def run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), self._interval)
            if stop.is_set():
                break
            try:
                await self.sweep_once()
            except Exception:
                log.exception("sweep failed; next one in %.0fs", self._interval)

    async def sweep_once(self) -> None:
        await self.fail_overdue()
        await self.release_stuck()
        await self._outbox.publish_leftovers(older_than_seconds=OUTBOX_GRACE_SECONDS)
        self._kick()

    async def fail_overdue(self) -> int:
        async with self._runner.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(executions.c.id, executions.c.stage, executions.c.started_at).where(
                        executions.c.status.in_(
                            [ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value]
                        ),
                        executions.c.started_at.is_not(None),
                    )
                )
            ).all()
        now = utcnow()
        failed = 0
        for r in rows:
            stage = self._ctx.pipeline.stage(r.stage)
            timeout = stage.timeout_seconds if stage else 900
            if not selection.timed_out(r.started_at, timeout, self._margin, now):
                continue
            why = f"the {r.stage} job ran longer than its timeout ({timeout} s) without reporting a result"
            if await self._runner.run(partial(_fail, ctx=self._ctx, execution_id=r.id, reason=why)):
                log.warning("execution %s: %s", r.id, why)
                failed += 1
        return failed

    async def release_stuck(self) -> int:
        """Blocked tasks whose blockers are all done, ideas whose tasks are all done."""
        stages = self._ctx.pipeline.agent_stages
        async with self._runner.engine.connect() as conn:
            blocked = (await conn.execute(_STUCK_BLOCKED, {"stages": stages})).scalars().all()
            ideas = (await conn.execute(_FINISHED_IDEAS, {"stage": stages[0]})).scalars().all()
        for tid in blocked:
            await self._runner.run(partial(self._unblock, task_id=tid))
        for tid in ideas:
            await self._runner.run(partial(self._finish_idea, task_id=tid))
        return len(blocked) + len(ideas)

    async def _unblock(self, uow: UnitOfWork, task_id: int) -> None:
        for task, ready in await repo.lock_tasks(uow.conn, [task_id]):
            d = machine.on_blockers_changed(task.facts(blockers_done=ready))
            if d is not None:
                await transitions.apply(uow, self._ctx, task, d, actor="system", now=utcnow())

    async def _finish_idea(self, uow: UnitOfWork, task_id: int) -> None:
        for task, _, child_states in await repo.lock_and_read(uow.conn, [task_id]):
            if task.state == TaskState.WAITING_SUBTASKS and machine.idea_finished(child_states):
                await transitions.apply(
                    uow, self._ctx, task, machine.on_idea_finished(task.facts()), actor="system", now=utcnow()
                )
