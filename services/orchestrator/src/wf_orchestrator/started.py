"""What runners report about a job while it runs, read from WF_EVENTS by the durable consumer
`orchestrator-runner-events` (so an event sent while the orchestrator is down is still recorded):

- `execution.started`: started_at / runner_id are recorded and the execution marked running (the
  stage-timeout sweep counts from here); a "waiting for the model server" reason is cleared;
- `execution.waiting`: the job waits for an unreachable model server; the task's status reason says
  so ("waiting for the model server at …, retry 3 in 30 s") until the job starts again.

Writes are batched: one transaction per fetched batch, then the batch is acked. A batch that fails
on what one of its events holds (not because the database is away) is recorded event by event; an
event that cannot be recorded on its own is terminated with the reason, so it neither comes back
nor keeps the others of its batch from being recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

import nats.errors
from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import DataError, DBAPIError, IntegrityError, NotSupportedError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.bus import Delivery
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


# What an event holds makes these fail every time (SQLSTATE classes: data exception, integrity
# constraint, syntax or access rule); any other database error (a lost connection, a restart, a
# timeout) is the database's and passes.
_BAD_DATA = (DataError, IntegrityError, NotSupportedError, ProgrammingError)
_BAD_DATA_SQLSTATE_CLASSES = ("22", "23", "42")


def _database_away(err: BaseException) -> bool:
    if isinstance(err, OSError | TimeoutError):
        return True
    if not isinstance(err, DBAPIError) or isinstance(err, _BAD_DATA):
        return False
    sqlstate = getattr(err.orig, "sqlstate", None) or ""
    return not sqlstate.startswith(_BAD_DATA_SQLSTATE_CLASSES)


def _cause(err: BaseException) -> str:
    """The driver's words for a database error, without the statement's parameters (what a runner
    sent, a model server's address), for the log and a terminated event's reason."""
    cause = getattr(err, "orig", None) or err
    return f"{type(cause).__name__}: {str(cause)[:300]}"


class StartedTracker:
    def __init__(self, nc: NATS, js: JetStreamContext, engine: AsyncEngine, *, batch: int = 500) -> None:
        self._nc = nc
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
                except Exception as err:  # noqa: BLE001 - sorted below: the database's, or an event's
                    if _database_away(err):
                        # Not acked: redelivered after ack_wait, when the database is back.
                        log.warning("could not record %d runner event(s): %s", len(msgs), _cause(err))
                        await asyncio.sleep(0.5)
                    else:
                        await self._record_each(msgs)
                    continue
                for m in msgs:
                    with contextlib.suppress(nats.errors.Error):
                        await m.ack()
        finally:
            with contextlib.suppress(nats.errors.Error):
                await psub.unsubscribe()

    async def _record_each(self, msgs: list[Msg]) -> None:
        """Record a failed batch one event at a time: each that is recorded is acked, each that fails
        on its own is terminated with the reason; once the database itself fails, the rest stay
        unacked (redelivered after ack_wait)."""
        for m in msgs:
            delivery = Delivery(m, self._nc)
            try:
                await self.record([m])
            except Exception as err:  # noqa: BLE001 - the database's failure stops; an event's is terminated
                if _database_away(err):
                    log.warning("could not record runner events: %s", _cause(err))
                    await asyncio.sleep(0.5)
                    return
                with contextlib.suppress(nats.errors.Error):
                    await delivery.term(f"cannot be recorded: {_cause(err)}")
                continue
            with contextlib.suppress(nats.errors.Error):
                await delivery.ack(wait=False)
