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
    """Jobs being worked on per stage, and the most there ever were at once."""

    def __init__(self) -> None:
        self.now: Counter[str] = Counter()
        self.peak: Counter[str] = Counter()


async def _serve(js: JetStreamContext, stage: str, stop: asyncio.Event, hold: float, held: Held) -> None:
    psub = await js.pull_subscribe_bind(durable=subjects.job_consumer(stage), stream=subjects.JOBS_STREAM)

    async def work(msg: Msg) -> None:
        job = Job.model_validate_json(msg.data)
        held.now[stage] += 1
        held.peak[stage] = max(held.peak[stage], held.now[stage])
        if hold:
            await asyncio.sleep(hold)
        result = Result.answering(job, "pass", f"{stage} done")
        held.now[stage] -= 1
        ack = await js.publish_async(
            subjects.result_subject(stage),
            result.model_dump_json().encode(),
            headers={"Nats-Msg-Id": f"{job.idempotency_key}/result"},
        )
        await ack
        await msg.ack()

    while not stop.is_set():
        try:
            msgs = await psub.fetch(100, timeout=0.2)
        except (TimeoutError, nats.errors.TimeoutError):
            continue
        await asyncio.gather(*(work(m) for m in msgs))


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
