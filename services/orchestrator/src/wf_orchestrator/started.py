"""What runners report about a job while it runs, read from WF_EVENTS by the durable consumer
`orchestrator-runner-events` (so an event sent while the orchestrator is down is still recorded):

- `execution.started`: started_at / runner_id are recorded and the execution marked running (the
  stage-timeout sweep counts from here); a "waiting for the model server" reason is cleared;
- `execution.waiting`: the job waits for an unreachable model server; the task's status reason says
  so ("waiting for the model server at …, retry 3 in 30 s") until the job starts again.

Writes are batched: one transaction per fetched batch, then the batch is acked.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.db.tables import executions, tasks
from wf_common.events import ExecutionStarted, ExecutionWaiting, parse_event
from wf_common.jobs import utcnow
from wf_common.states import ExecutionStatus, TaskState
from wf_common.subjects import EVENTS_STREAM, RUNNER_EVENTS_CONSUMER

log = logging.getLogger(__name__)

WAITING_PREFIX = "waiting for the model server"

_MARK = (
    update(executions)
    .where(
        executions.c.id == bindparam("eid"),
        # Not `in_`: its expanding parameter cannot be sent with executemany (a batch of many).
        or_(
            executions.c.status == ExecutionStatus.PENDING.value,
            executions.c.status == ExecutionStatus.RUNNING.value,
        ),
    )
    .values(status=ExecutionStatus.RUNNING.value, started_at=bindparam("at"), runner_id=bindparam("runner"))
)
_RUNNING_TASK = (
    # Found through the execution's primary key (current_execution_id has no index of its own).
    tasks.c.id == select(executions.c.task_id).where(executions.c.id == bindparam("eid")).scalar_subquery(),
    tasks.c.current_execution_id == bindparam("eid"),
    tasks.c.state == TaskState.RUNNING.value,
)
# Only the reason this module writes is replaced or cleared, never another one.
_SET_WAITING = (
    update(tasks)
    .where(*_RUNNING_TASK, tasks.c.status_reason.is_(None) | tasks.c.status_reason.startswith(WAITING_PREFIX))
    .values(status_reason=bindparam("reason"), updated_at=bindparam("now"))
)
_CLEAR_WAITING = (
    update(tasks)
    .where(*_RUNNING_TASK, tasks.c.status_reason.startswith(WAITING_PREFIX))
    .values(status_reason=None, updated_at=bindparam("now"))
)


class StartedTracker:
    def __init__(self, js: JetStreamContext, engine: AsyncEngine, *, batch: int = 500) -> None:
        self._js = js
        self._engine = engine
        self._batch = batch
        self.recorded = 0

    async def record(self, msgs: list[Msg]) -> None:
        """Record a batch (latest event per execution wins) in one transaction."""
        latest: dict[int, ExecutionStarted | ExecutionWaiting] = {}
        for m in msgs:
            try:
                ev = parse_event(m.data)
            except ValidationError:
                log.warning("not a runner event on %s: ignored", m.subject)
                continue
            if isinstance(ev, ExecutionStarted | ExecutionWaiting):
                latest[ev.execution_id] = ev
        started = [
            {"eid": e, "at": ev.at, "runner": ev.runner_id[:100]}
            for e, ev in sorted(latest.items())
            if isinstance(ev, ExecutionStarted)
        ]
        now = utcnow()
        waiting: list[dict[str, Any]] = [
            {"eid": e, "reason": ev.describe()[:1000], "now": now}
            for e, ev in sorted(latest.items())
            if isinstance(ev, ExecutionWaiting)
        ]
        if not latest:
            return
        async with self._engine.begin() as conn:
            if started:
                await conn.execute(_MARK, started)
                await conn.execute(_CLEAR_WAITING, [{"eid": r["eid"], "now": now} for r in started])
            if waiting:
                await conn.execute(_SET_WAITING, waiting)
        self.recorded += len(latest)

    async def run(self, stop: asyncio.Event) -> None:
        psub = await self._js.pull_subscribe_bind(durable=RUNNER_EVENTS_CONSUMER, stream=EVENTS_STREAM)
        try:
            while not stop.is_set():
                try:
                    msgs = await psub.fetch(self._batch, timeout=0.25)
                except (TimeoutError, nats.errors.TimeoutError):
                    continue
                except nats.errors.Error as err:
                    if not stop.is_set():
                        log.warning("fetching runner events failed: %s", err)
                        await asyncio.sleep(0.5)
                    continue
                try:
                    await self.record(msgs)
                except (DBAPIError, OSError) as err:
                    # Not acked: redelivered after ack_wait, when the database is back.
                    log.warning("could not record %d runner event(s): %s", len(msgs), err)
                    await asyncio.sleep(0.5)
                    continue
                for m in msgs:
                    with contextlib.suppress(nats.errors.Error):
                        await m.ack()
        finally:
            with contextlib.suppress(nats.errors.Error):
                await psub.unsubscribe()
