"""JetStream's max-deliveries advisory: a job was delivered `max_deliver` times and never acked
(its runners crashed or hung each time). Its task is failed with that reason and the message is
deleted, so nothing stays behind in the work queue.

The advisories are stored in the stream WF_ADVISORIES and read by its durable consumer
`orchestrator`: one sent while the orchestrator is down (or a standby is taking over) is handled when
it is back. Handling is idempotent (an execution that already ended is left alone)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from pydantic import ValidationError
from wf_common import bus
from wf_common.jobs import Job
from wf_common.subjects import ADVISORIES_CONSUMER, ADVISORIES_STREAM, JOBS_STREAM

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
        self.handled = 0

    async def run(self, stop: asyncio.Event) -> None:
        await bus.consume(
            self._nc,
            self._js,
            stream=ADVISORIES_STREAM,
            durable=ADVISORIES_CONSUMER,
            handler=self.on_delivery,
            stop=stop,
            batch=10,
            concurrency=10,
            fetch_timeout=0.5,
        )

    async def on_delivery(self, delivery: bus.Delivery) -> None:
        try:
            advisory = json.loads(delivery.data)
            seq = int(advisory["stream_seq"])
        except (ValueError, KeyError, TypeError) as err:
            await delivery.term(f"not a max-deliveries advisory: {err}")
            return
        # A failure raises: bus.consume naks it and it is tried again (up to the consumer's max_deliver).
        await self.handle(seq, advisory.get("deliveries"), advisory.get("consumer"))
        self.handled += 1
        await delivery.ack()

    async def handle(self, seq: int, deliveries: object, consumer: object) -> None:
        try:
            raw = await self._js.get_msg(JOBS_STREAM, seq)
        except NotFoundError:
            log.info("job %s of %s is gone already (acked or terminated)", seq, consumer)
            return
        try:
            job = Job.model_validate_json(raw.data or b"")
        except ValidationError:
            log.error("message %s in %s is not a job; deleting it", seq, JOBS_STREAM)  # noqa: TRY400
        else:
            times = (
                int(deliveries) if isinstance(deliveries, int | str) and str(deliveries).isdigit() else None
            )
            why = reason(times)
            ctx = self._ctx
            failed = await self._runner.run(
                lambda uow: fail_execution(uow, ctx, job.job_id, why, kind="max_deliveries")
            )
            log.warning("%s: %s%s", job.idempotency_key, why, "" if failed else " (already ended)")
        with contextlib.suppress(NotFoundError):
            await self._js.delete_msg(JOBS_STREAM, seq)
