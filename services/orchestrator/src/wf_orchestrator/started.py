"""Runners announce each job they start (`execution.started` events); the orchestrator records
started_at / runner_id and marks the execution running. Writes are batched: one UPDATE per interval."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from datetime import datetime

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from pydantic import ValidationError
from sqlalchemy import bindparam, update
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common.db.tables import executions
from wf_common.events import ExecutionStarted
from wf_common.states import ExecutionStatus
from wf_common.subjects import EVENTS_PREFIX

log = logging.getLogger(__name__)

SUBJECT = f"{EVENTS_PREFIX}.*.*.execution.started"

_MARK = (
    update(executions)
    .where(
        executions.c.id == bindparam("eid"),
        executions.c.status.in_([ExecutionStatus.PENDING.value, ExecutionStatus.RUNNING.value]),
    )
    .values(status=ExecutionStatus.RUNNING.value, started_at=bindparam("at"), runner_id=bindparam("runner"))
)


class StartedTracker:
    def __init__(self, nc: NATS, engine: AsyncEngine) -> None:
        self._nc = nc
        self._engine = engine
        self._sub: Subscription | None = None
        # Latest start per execution: a redelivered job restarts its clock.
        self._pending: dict[int, tuple[datetime, str]] = {}

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(SUBJECT, cb=self._on_msg)

    async def _on_msg(self, msg: Msg) -> None:
        try:
            ev = ExecutionStarted.model_validate_json(msg.data)
        except ValidationError:
            return
        self._pending[ev.execution_id] = (ev.at, ev.runner_id[:100])

    async def flush(self) -> None:
        if not self._pending:
            return
        batch, self._pending = self._pending, {}
        async with self._engine.begin() as conn:
            await conn.execute(
                _MARK, [{"eid": e, "at": at, "runner": r} for e, (at, r) in sorted(batch.items())]
            )

    async def run(self, stop: asyncio.Event, interval: float = 0.25) -> None:
        while not stop.is_set():
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(stop.wait(), interval)
            try:
                await self.flush()
            except Exception as err:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
                log.warning("could not record started executions: %s", err)
        if self._sub is not None:
            with contextlib.suppress(Exception):
                await self._sub.unsubscribe()
        with contextlib.suppress(Exception):
            await self.flush()
