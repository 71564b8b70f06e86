"""The runner: pulls jobs for its stages from the shared durable consumers, runs them, publishes
results, and keeps its heartbeat in the `wf_runners` KV bucket.

Several runners share each stage's consumer, so a job goes to exactly one of them. A runner keeps one
pull outstanding on every stage it serves while it has a free slot (`concurrency`, across all its
stages), so an idle runner receives a job the moment it is published; a job fetched but not worked on
would sit unacked while another runner is idle, which is why this loop fetches itself instead of
running one `bus.consume` per stage, whose concurrency is per consumer. `_intake` consumes;
`handle` runs one job (kept separate so the job flow can grow without touching the loop).

Per job: ExecutionStarted -> agent (with `in_progress` heartbeats) -> Result on wf.results.<stage>
with Nats-Msg-Id `<idempotency key>/result` -> ack. The result is published before the ack, so a
crash in between means a redelivery, and the duplicate result is dropped by the stream.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket

import nats.errors
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.kv import KeyValue
from pydantic import ValidationError
from wf_common import bus, subjects
from wf_common.bus import Delivery
from wf_common.events import ExecutionStarted, ExecutionWaiting
from wf_common.jobs import Job, RunnerHeartbeat

from wf_agent_runner.execution import JobExecutor, Outcome
from wf_agent_runner.llm.checks import check_backends
from wf_agent_runner.settings import RunnerSettings
from wf_agent_runner.turns import PauseWatch, TurnGate

log = logging.getLogger(__name__)


class Runner:
    def __init__(self, settings: RunnerSettings, nc: NATS, js: JetStreamContext | None = None) -> None:
        self.settings = settings
        self.workflow = settings.workflow
        self.nc = nc
        self.js = js or nc.jetstream()
        self.runner_id = settings.runner_id
        self.stages = settings.served_stages()
        self.executor = JobExecutor(
            self.workflow, self.js, runner_id=self.runner_id, test_timeout=settings.test_timeout_seconds
        )
        self._inflight: set[asyncio.Task[None]] = set()
        self._busy: set[str] = set()
        self._busy_changed = asyncio.Event()  # beat at once, so `wf runners` shows a job as it starts
        self._kv: KeyValue | None = None
        self.pauses = PauseWatch(self.js)

    async def run(self, stop: asyncio.Event) -> None:
        await bus.ensure_topology(self.js, self.workflow.bus, self.stages, update_existing=False)
        self._kv = await self.js.key_value(subjects.RUNNERS_BUCKET)
        await self.pauses.start()
        done = asyncio.Event()
        beat = asyncio.create_task(self._heartbeat(done))
        log.info(
            "runner %s serving %s (concurrency %d)", self.runner_id, self.stages, self.settings.concurrency
        )
        self._checks = asyncio.create_task(check_backends(self.workflow, self._roles()))
        try:
            await self._intake(stop)
        finally:
            self._checks.cancel()  # the start-up check of the model backends, if still running
            await self._drain()
            done.set()
            await beat
            await self.pauses.stop()
            with contextlib.suppress(Exception):
                await self._kv.delete(self.runner_id)
            log.info("runner %s stopped", self.runner_id)

    def _roles(self) -> list[str]:
        stages = (self.workflow.pipeline.stage(s) for s in self.stages)
        return sorted({s.agent for s in stages if s is not None and s.agent})

    # -- intake ------------------------------------------------------------------------------------

    async def _intake(self, stop: asyncio.Event) -> None:
        """One pull per stage, all outstanding at once, behind one slot semaphore: an idle runner gets
        a job the moment it is published, whatever its stage. A stage only asks for a job while a slot
        is free; if two stages' jobs arrive for the last free slot, the second waits here for a slot
        (its delivery kept alive with `in_progress`), which is rare and never longer than one job."""
        slots = asyncio.Semaphore(self.settings.concurrency)
        pullers = [
            asyncio.create_task(self._pull(stage, slots, stop), name=f"pull-{stage}") for stage in self.stages
        ]
        try:
            await asyncio.gather(*pullers)
        finally:
            for t in pullers:
                t.cancel()
            await asyncio.gather(*pullers, return_exceptions=True)

    async def _pull(self, stage: str, slots: asyncio.Semaphore, stop: asyncio.Event) -> None:
        sub = await self.js.pull_subscribe_bind(
            durable=subjects.job_consumer(stage), stream=subjects.JOBS_STREAM
        )
        try:
            while not stop.is_set():
                if slots.locked():  # no free slot: do not ask for a job we could not start
                    await self._slot_freed(stop)
                    continue
                try:
                    msgs = await sub.fetch(1, timeout=1.0)  # bounds how long a stop waits
                except (nats.errors.TimeoutError, TimeoutError):
                    continue
                except nats.errors.Error as err:
                    if not stop.is_set():
                        log.warning("fetching %s jobs failed: %s", stage, err)
                        await asyncio.sleep(0.5)
                    continue
                for msg in msgs:
                    delivery = Delivery(msg, self.nc)
                    if not await self._take_slot(slots, delivery, stop):
                        continue
                    task = asyncio.create_task(self._run_delivery(delivery))
                    self._inflight.add(task)
                    task.add_done_callback(self._inflight.discard)
                    task.add_done_callback(lambda _t: slots.release())
        finally:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()

    async def _take_slot(self, slots: asyncio.Semaphore, delivery: Delivery, stop: asyncio.Event) -> bool:
        """A slot for this delivery; False (and the job handed back at once) when stopping first."""
        if not slots.locked():
            await slots.acquire()
            return True
        try:
            async with delivery.heartbeat(every=self.workflow.bus.ack_wait_seconds / 3):
                while not stop.is_set():
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(slots.acquire(), 0.5)
                        return True
        except asyncio.CancelledError:
            with contextlib.suppress(nats.errors.Error):
                await delivery.nak(0)
            raise
        with contextlib.suppress(nats.errors.Error):
            await delivery.nak(0)
        return False

    async def _slot_freed(self, stop: asyncio.Event) -> None:
        if self._inflight:
            await asyncio.wait(self._inflight, timeout=0.5, return_when=asyncio.FIRST_COMPLETED)
        else:
            await asyncio.sleep(0)  # the releasing callback has not run yet

    async def _drain(self) -> None:
        """Let in-flight jobs finish for `drain_seconds`; hand back (nak) the ones still running."""
        if not self._inflight:
            return
        log.info(
            "waiting up to %gs for %d job(s) to finish", self.settings.drain_seconds, len(self._inflight)
        )
        _, pending = await asyncio.wait(self._inflight, timeout=self.settings.drain_seconds)
        for task in pending:
            task.cancel()
        if pending:
            await asyncio.gather(*pending, return_exceptions=True)

    async def _run_delivery(self, delivery: Delivery) -> None:
        try:
            await self.handle(delivery)
        except asyncio.CancelledError:
            # Stopping: another runner (or this one, restarted) takes the job right away.
            with contextlib.suppress(Exception):
                await delivery.nak(0)
            raise
        except Exception:
            # Typically NATS unreachable while publishing: the job is retried (max_deliver caps it).
            log.exception("job message seq=%s failed; handing it back", delivery.stream_seq)
            with contextlib.suppress(Exception):
                await delivery.nak(min(30.0, 2.0 * delivery.num_delivered))

    # -- one job -------------------------------------------------------------------------------------

    async def handle(self, delivery: Delivery) -> None:
        try:
            job = Job.model_validate_json(delivery.data)
        except ValidationError as err:
            first = err.errors()[0] if err.errors() else {"loc": (), "msg": str(err)}
            where = ".".join(str(p) for p in first["loc"]) or "(message)"
            await delivery.term(f"undecodable job ({err.error_count()} errors; {where}: {first['msg']})")
            return
        n = delivery.num_delivered
        key = job.idempotency_key
        self._set_busy(key, True)
        try:
            # The heartbeat (in_progress) goes on while a pause holds the job: it is not redelivered.
            async with (
                delivery.heartbeat(every=self.workflow.bus.ack_wait_seconds / 3),
                TurnGate(job, self.pauses, self.nc, self.js, runner_id=self.runner_id) as turns,
            ):
                started = ExecutionStarted(
                    project=job.project.slug,
                    task_key=job.task.key,
                    actor=f"runner:{self.runner_id}",
                    execution_id=job.job_id,
                    stage=job.stage,
                    runner_id=self.runner_id,
                    delivery=n,
                )
                await bus.publish(self.js, started.subject(), started)
                log.info("job %s: delivery %d started", key, n)
                outcome = await self.executor.execute(job, n, turns)
                if outcome.retry_in is not None:
                    log.warning("job %s: model unavailable, retrying in %gs", key, outcome.retry_in)
                    await self._announce_waiting(job, n, outcome)
                    await delivery.nak(outcome.retry_in)
                    return
                if outcome.result is None:  # an Outcome is a result or a retry; never neither
                    raise RuntimeError(f"job {key}: the executor returned no result and no retry")
                await bus.publish(
                    self.js, subjects.result_subject(job.stage), outcome.result, msg_id=f"{key}/result"
                )
                if outcome.terminate is not None:
                    await delivery.term(outcome.terminate)
                else:
                    await delivery.ack()
                log.info("job %s: %s", key, outcome.result.status.value)
        finally:
            self._set_busy(key, False)

    async def _announce_waiting(self, job: Job, delivery: int, outcome: Outcome) -> None:
        """execution.waiting: the task shows "waiting for the model server at …, retry N in S s"."""
        waiting = ExecutionWaiting(
            project=job.project.slug,
            task_key=job.task.key,
            actor=f"runner:{self.runner_id}",
            execution_id=job.job_id,
            reason=outcome.waiting_reason or "the model server could not be reached",
            url=outcome.waiting_url or self.workflow.llm_backend.host,
            retry=delivery,
            retry_in_seconds=outcome.retry_in or 0.0,
        )
        try:
            await bus.publish(self.js, waiting.subject(), waiting)
        except nats.errors.Error as err:  # information only: the retry happens either way
            log.warning("could not announce that job %s waits: %s", job.idempotency_key, err)

    def _set_busy(self, key: str, busy: bool) -> None:
        if busy:
            self._busy.add(key)
        else:
            self._busy.discard(key)
        self._busy_changed.set()

    # -- heartbeat ---------------------------------------------------------------------------------

    async def _heartbeat(self, done: asyncio.Event) -> None:
        every = self.workflow.runner.heartbeat_seconds  # the config keeps it well inside the bucket TTL
        while not done.is_set():
            self._busy_changed.clear()  # before reading _busy: a change from now on beats again
            beat = RunnerHeartbeat(
                runner_id=self.runner_id,
                stages=self.stages,
                pid=os.getpid(),
                host=socket.gethostname(),
                busy=sorted(self._busy),
            )
            try:
                if self._kv is not None:
                    await self._kv.put(self.runner_id, beat.model_dump_json().encode())
            except (nats.errors.Error, OSError, TimeoutError) as err:
                log.warning("heartbeat to %s failed: %s", subjects.RUNNERS_BUCKET, err)
            waits = [asyncio.ensure_future(done.wait()), asyncio.ensure_future(self._busy_changed.wait())]
            await asyncio.wait(waits, timeout=every, return_when=asyncio.FIRST_COMPLETED)
            for w in waits:
                w.cancel()
