"""The consumer of WF_RESULTS: each result is applied in one unit of work, then acked.

Results of different tasks are applied concurrently (each transaction locks its task row); a result
whose execution already ended (a redelivery, a duplicate) changes nothing and is acked.

A result whose apply fails (other than for an unreachable database or NATS, which is waited out) is
tried again after a delay, up to `orchestrator.result_apply_tries` deliveries; then it is terminated,
its task is failed with the reason (retryable with `wf retry`) and a `result.rejected` event says so.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from pydantic import ValidationError
from sqlalchemy.exc import DBAPIError
from wf_common import bus
from wf_common.jobs import Result
from wf_common.subjects import RESULTS_CONSUMER, RESULTS_STREAM

from wf_orchestrator.hop import Hop, HopStatementFailed
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.outcomes import apply_result, fail_execution
from wf_orchestrator.uow import Runner

log = logging.getLogger(__name__)

# Failures of what the apply depends on, not of the result: waited out however long they last.
TRANSIENT = (OSError, nats.errors.Error, TimeoutError)


class ResultsConsumer:
    def __init__(
        self,
        nc: NATS,
        js: JetStreamContext,
        runner: Runner,
        ctx: Context,
        *,
        concurrency: int,
        apply_tries: int = 5,
        hop: Hop | None = None,
        paused: Callable[[], bool] = lambda: False,
    ) -> None:
        self._hop = hop
        self._paused = paused
        self._nc = nc
        self._js = js
        self._runner = runner
        self._ctx = ctx
        self._concurrency = concurrency
        self._tries = apply_tries
        self.applied = 0
        self.rejected = 0
        self.timings: list[float] | None = None  # set to a list to record apply times (make bench)

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
        received = time.perf_counter()
        if await self._try_hop(result):
            self.applied += 1
            if self.timings is not None:
                self.timings.append(time.perf_counter() - received)
            await delivery.ack(wait=False)  # after the next Job's ack (the hop waited for it)
            return
        try:
            applied = await self._runner.run(lambda uow: apply_result(uow, ctx, result))
        except TRANSIENT:
            raise  # nak'ed by bus.consume; never counted against the result
        except DBAPIError as err:
            if err.connection_invalidated:
                raise
            await self._failed(delivery, result, err)
            return
        except Exception as err:  # noqa: BLE001 - whatever breaks an apply counts toward the poison bound
            await self._failed(delivery, result, err)
            return
        if applied:
            self.applied += 1
            if self.timings is not None:  # the messages, the next Job among them, are acked by now
                self.timings.append(time.perf_counter() - received)
        # Acked after the commit and the publication of its messages, without waiting for the server:
        # a lost ack only means a redelivery, which changes nothing (the execution has ended).
        await delivery.ack(wait=False)

    @property
    def hop(self) -> Hop | None:
        return self._hop

    async def _try_hop(self, result: Result) -> bool:
        """The one-statement hop (wf_orchestrator.hop); False sends the result down the locked path."""
        if self._hop is None:
            return False
        try:
            applied = await self._hop.try_apply(result, paused=self._paused())
        except TRANSIENT:
            raise
        except HopStatementFailed as err:
            # Nothing was written (one statement): the locked path tries, and bounds, it again.
            log.info("hop for %s failed (%s); taking the locked path", result.idempotency_key, _describe(err))
            self._ctx.memory.forget_task_of(result.job_id)
            return False
        return applied

    async def _failed(self, delivery: bus.Delivery, result: Result, err: BaseException) -> None:
        n = delivery.num_delivered
        what = _describe(err)
        if n < self._tries:
            log.warning(
                "result %s could not be applied (delivery %d of %d): %s; trying again",
                result.idempotency_key,
                n,
                self._tries,
                what,
            )
            await delivery.nak(delay=min(10.0, 0.2 * 2**n))
            return
        why = f"its result could not be applied after {n} tries: {what}"
        ctx = self._ctx
        failed = await self._runner.run(
            lambda uow: fail_execution(uow, ctx, result.job_id, why, kind="result_rejected", rejected_after=n)
        )
        self.rejected += 1
        ended = "" if failed else " (already ended)"
        log.error("result %s terminated: %s%s", result.idempotency_key, why, ended)
        await delivery.term(why)


def _describe(err: BaseException) -> str:
    """One line, safe to store: the first line of the error, without NUL characters."""
    text = (str(getattr(err, "orig", None) or err) or type(err).__name__).replace("\x00", "")
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"[:300]
