"""JetStream's max-deliveries advisory: a job was delivered `max_deliver` times and never acked
(its runners crashed or hung each time). Its task is failed with that reason and the message is
deleted, so nothing stays behind in the work queue."""

from __future__ import annotations

import asyncio
import json
import logging

from nats.aio.client import Client as NATS
from nats.aio.msg import Msg
from nats.aio.subscription import Subscription
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from wf_common.jobs import Job
from wf_common.subjects import JOBS_STREAM, MAX_DELIVERIES_ADVISORY

from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.outcomes import fail_execution
from wf_orchestrator.uow import Runner

log = logging.getLogger(__name__)


def reason(deliveries: int | None) -> str:
    times = f"{deliveries} times" if deliveries else "too many times"
    return f"the job was delivered {times} without finishing (runner crashed or timed out each time)"


class DeliveryAdvisories:
    def __init__(self, nc: NATS, js: JetStreamContext, runner: Runner, ctx: Context) -> None:
        self._nc = nc
        self._js = js
        self._runner = runner
        self._ctx = ctx
        self._sub: Subscription | None = None
        self._inflight: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        self._sub = await self._nc.subscribe(MAX_DELIVERIES_ADVISORY, cb=self._on_msg)

    async def stop(self) -> None:
        if self._sub is not None:
            await self._sub.unsubscribe()
        if self._inflight:
            await asyncio.gather(*self._inflight, return_exceptions=True)

    async def _on_msg(self, msg: Msg) -> None:
        task = asyncio.create_task(self._handle_with_retries(msg.data))
        self._inflight.add(task)
        task.add_done_callback(self._inflight.discard)

    async def _handle_with_retries(self, data: bytes) -> None:
        # Advisories are not redelivered: try a few times before giving up (the sweeps do not see it).
        for attempt in range(1, 6):
            try:
                await self.handle(data)
                return  # noqa: TRY300 - kept in the try on purpose
            except Exception:
                log.exception("max-deliveries advisory failed (try %d)", attempt)
                await asyncio.sleep(0.5 * attempt)

    async def handle(self, data: bytes) -> None:
        advisory = json.loads(data)
        seq = int(advisory["stream_seq"])
        deliveries = advisory.get("deliveries")
        try:
            raw = await self._js.get_msg(JOBS_STREAM, seq)
        except NotFoundError:
            log.info("job %s of %s is gone already (acked or terminated)", seq, advisory.get("consumer"))
            return
        try:
            job = Job.model_validate_json(raw.data or b"")
        except ValidationError:
            log.error("message %s in %s is not a job; deleting it", seq, JOBS_STREAM)  # noqa: TRY400 - the message says what happened; no traceback in the log
        else:
            why = reason(int(deliveries) if deliveries else None)
            ctx = self._ctx
            failed = await self._runner.run(
                lambda uow: fail_execution(uow, ctx, job.job_id, why, kind="max_deliveries")
            )
            log.warning("%s: %s%s", job.idempotency_key, why, "" if failed else " (already ended)")
        try:  # noqa: SIM105 - kept explicit
            await self._js.delete_msg(JOBS_STREAM, seq)
        except NotFoundError:
            pass
