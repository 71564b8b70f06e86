"""An agent runner whose agents answer at once (pass), for throughput and concurrency tests.

In-process: `await run_instant_runner(js, stages, stop)`. As its own process (fairer numbers, as the
real runners are separate processes): `python -m tests.orchestrator.instant_runner NATS_URL dev,qa`.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import nats
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from wf_common import subjects
from wf_common.jobs import Job, Result


class Held:
    """Jobs being worked on per stage, and the most there ever were at once.

    `fill={"dev": (3, 20)}` holds each DEV job until as many are held at once as a WIP limit of 3
    allows (fewer once fewer than 3 of the 20 are left), then lets that batch go. So the peak shows
    what the orchestrator dispatched, not how fast this runner happened to fetch: a run whose
    orchestrator never fills the limit waits, and the test's deadline says so."""

    def __init__(self, fill: dict[str, tuple[int, int]] | None = None) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()
        self.finished: Counter[str] = Counter()
        self.fill = fill or {}
        self._batch: dict[str, asyncio.Event] = {}

    async def hold(self, stage: str, extra: float) -> None:
        self.now[stage] += 1
        self.peak[stage] = max(self.peak[stage], self.now[stage])
        if stage in self.fill:
            limit, total = self.fill[stage]
            batch = self._batch.setdefault(stage, asyncio.Event())
            if self.now[stage] >= min(limit, total - self.finished[stage]):
                del self._batch[stage]  # jobs that come after this join the next batch
                batch.set()
            await batch.wait()
        if extra:
            await asyncio.sleep(extra)  # room for a job the orchestrator should not have sent
        self.now[stage] -= 1
        self.finished[stage] += 1


async def _serve(js: JetStreamContext, stage: str, stop: asyncio.Event, hold: float, held: Held) -> None:
    psub = await js.pull_subscribe_bind(durable=subjects.job_consumer(stage), stream=subjects.JOBS_STREAM)

    async def work(msg: Msg) -> None:
        job = Job.model_validate_json(msg.data)
        await held.hold(stage, hold)
        result = Result.answering(job, "pass", f"{stage} done")
        ack = await js.publish_async(
            subjects.result_subject(stage),
            result.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"{job.idempotency_key}/result"},
        )
        await ack
        await msg.ack()

    working: set[asyncio.Task[None]] = set()
    while not stop.is_set():
        try:
            msgs = await psub.fetch(100, timeout=0.2)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        for msg in msgs:  # keep fetching while these are held
            job_task = asyncio.create_task(work(msg))
            working.add(job_task)
            job_task.add_done_callback(working.discard)
    await asyncio.gather(*working)


async def run_instant_runner(
    js: JetStreamContext,
    stages: list[str],
    stop: asyncio.Event,
    *,
    hold: float = 0.0,
    held: Held | None = None,
) -> Held:
    held = held or Held()
    await asyncio.gather(*(_serve(js, s, stop, hold, held) for s in stages))
    return held


async def _main(url: str, stages: list[str]) -> None:
    nc = await nats.connect(url)
    await run_instant_runner(nc.jetstream(), stages, asyncio.Event())


if __name__ == "__main__":
    asyncio.run(_main(sys.argv[1], sys.argv[2].split(",")))
