"""Periodic housekeeping, every `sweep_interval_seconds`:

- executions running longer than their stage's timeout (+ margin) are failed; the task is retryable;
- executions whose job no runner ever started and that have no job left in WF_JOBS (the stage's
  consumer has nothing pending or in flight, and no job waits in the outbox) are failed too: their
  job is gone (deleted, or terminated with its advisory lost), so they would otherwise wait forever;
- safety nets for what a race or a crash could leave behind: blocked tasks whose blockers are all
  done, ideas whose tasks are all done (a crash between a last task's commit and the idea's own),
  outbox rows whose publication failed;
- memory's bound of the jobs running now read again (an end it missed left it too high);
- a dispatch pass, so nothing waits for a kick that never came.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import timedelta
from functools import partial

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from sqlalchemy import and_, any_, bindparam, exists, select
from wf_common.db.tables import executions, outbox, tasks
from wf_common.jobs import utcnow
from wf_common.states import ExecutionStatus, TaskState
from wf_common.subjects import (
    JOBS_PREFIX,
    JOBS_STREAM,
    RESULTS_CONSUMER,
    RESULTS_STREAM,
    job_consumer,
    job_subject,
)

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
        js: JetStreamContext | None = None,
        interval: float,
        timeout_margin: float,
    ) -> None:
        self._runner = runner
        self._ctx = ctx
        self._outbox = outbox
        self._kick = kick
        self._interval = interval
        self._margin = timeout_margin
        self._js = js

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
        await self.fail_lost()
        await self.release_stuck()
        await self._outbox.publish_leftovers(older_than_seconds=OUTBOX_GRACE_SECONDS)
        await self.reload_jobs()
        self._kick()

    async def reload_jobs(self) -> None:
        """Memory's bound of the jobs running now, from the database, while nothing starts one."""
        if not self._ctx.memory.loaded:
            return
        async with self._runner.dispatch_lock, self._runner.engine.connect() as conn:
            await self._ctx.memory.load_jobs(conn)

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

    async def fail_lost(self) -> int:
        """Never-started executions whose job is no longer anywhere (see the module docstring)."""
        if self._js is None:
            return 0
        cutoff = utcnow() - timedelta(seconds=self._margin + OUTBOX_GRACE_SECONDS)
        async with self._runner.engine.connect() as conn:
            rows = (
                await conn.execute(
                    select(executions.c.id, executions.c.stage).where(
                        executions.c.status == ExecutionStatus.PENDING.value,
                        executions.c.started_at.is_(None),
                        executions.c.queued_at < cutoff,
                    )
                )
            ).all()
            if not rows:
                return 0
            waiting = set(
                (
                    await conn.execute(
                        select(outbox.c.subject).where(outbox.c.subject.startswith(JOBS_PREFIX)).distinct()
                    )
                )
                .scalars()
                .all()
            )
        results = await self._js.consumer_info(RESULTS_STREAM, RESULTS_CONSUMER)
        if results.num_pending or results.num_ack_pending:
            return 0  # a result still to apply may be the one of such an execution
        failed = 0
        empty: dict[str, bool] = {}
        for r in rows:
            if r.stage not in empty:
                try:
                    info = await self._js.consumer_info(JOBS_STREAM, job_consumer(r.stage))
                    empty[r.stage] = not info.num_pending and not info.num_ack_pending
                except NotFoundError:
                    empty[r.stage] = True
                empty[r.stage] = empty[r.stage] and job_subject(r.stage) not in waiting
            if not empty[r.stage]:
                continue
            why = (
                f"the {r.stage} job was never started and is no longer in the queue "
                "(deleted, or terminated while the orchestrator was not told)"
            )
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
            await self._runner.run(partial(transitions.finish_idea_if_done, ctx=self._ctx, idea_id=tid))
        return len(blocked) + len(ideas)

    async def _unblock(self, uow: UnitOfWork, task_id: int) -> None:
        for task, ready in await repo.lock_tasks(uow.conn, [task_id]):
            d = machine.on_blockers_changed(task.facts(blockers_done=ready))
            if d is not None:
                await transitions.apply(uow, self._ctx, task, d, actor="system", now=utcnow())
