"""(1) Raw JetStream: publish (with ack) → the message in the hand of a waiting pull consumer.

The consumer waits in `fetch` the way our services do, so this is the floor for one hop on the bus.
"""

from __future__ import annotations

import asyncio
import time

from nats.js.api import AckPolicy, ConsumerConfig, RetentionPolicy, StreamConfig
from wf_common import bus


async def measure(nats_url: str, count: int = 2000, warmup: int = 200) -> list[float]:
    nc = await bus.connect(nats_url, "bench-raw")
    js = nc.jetstream()
    await js.add_stream(
        StreamConfig(name="BENCH_RAW", subjects=["bench.raw"], retention=RetentionPolicy.WORK_QUEUE)
    )
    await js.add_consumer("BENCH_RAW", ConsumerConfig(durable_name="raw", ack_policy=AckPolicy.EXPLICIT))
    psub = await js.pull_subscribe_bind(durable="raw", stream="BENCH_RAW")
    samples: list[float] = []
    received = asyncio.Queue[float]()

    async def consumer() -> None:
        while True:
            try:
                msgs = await psub.fetch(1, timeout=5)
            except TimeoutError:
                continue
            now = time.perf_counter()
            for m in msgs:
                await m.ack()
                await received.put(now - float(m.data))

    task = asyncio.create_task(consumer())
    try:
        for i in range(warmup + count):
            await js.publish("bench.raw", repr(time.perf_counter()).encode())
            latency = await received.get()
            if i >= warmup:
                samples.append(latency)
    finally:
        task.cancel()
        await js.delete_stream("BENCH_RAW")
        await nc.close()
    return samples
