"""The consumer of WF_RESULTS: each result is applied in one unit of work, then acked.

Results of different tasks are applied concurrently (each transaction locks its task row); a result
whose execution already ended (a redelivery, a duplicate) changes nothing and is acked.
"""

from __future__ import annotations

import asyncio
import logging

from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import ValidationError
from wf_common import bus
from wf_common.jobs import Result
from wf_common.subjects import RESULTS_CONSUMER, RESULTS_STREAM

from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.outcomes import apply_result
from wf_orchestrator.uow import Runner

log = logging.getLogger(__name__)


class ResultsConsumer:
    def __init__(
        self, nc: NATS, js: JetStreamContext, runner: Runner, ctx: Context, *, concurrency: int
    ) -> None:
        self._nc = nc
        self._js = js
        self._runner = runner
        self._ctx = ctx
        self._concurrency = concurrency
        self.applied = 0

    async def run(self, stop: asyncio.Event) -> None:
        await bus.consume(
            self._nc,
            self._js,
            stream=RESULTS_STREAM,
            durable=RESULTS_CONSUMER,
            handler=self.handle,
            stop=stop,
            batch=self._concurrency,
            concurrency=self._concurrency,
            fetch_timeout=0.25,  # how long a stop waits for an idle fetch
        )

    async def handle(self, delivery: bus.Delivery) -> None:
        try:
            result = Result.model_validate_json(delivery.data)
        except ValidationError as err:
            await delivery.term(f"not a valid Result: {err.errors()[:3]}")
            return
        ctx = self._ctx
        if await self._runner.run(lambda uow: apply_result(uow, ctx, result)):
            self.applied += 1
        # Acked after the commit and the publication of its messages, without waiting for the server:
        # a lost ack only means a redelivery, which changes nothing (the execution has ended).
        await delivery.ack(wait=False)
