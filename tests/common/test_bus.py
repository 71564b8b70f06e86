"""NATS helpers against a real server: topology, de-duplication, term, and a clear connect error."""

import asyncio
import functools

import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from wf_cli.embedded import NatsServer
from wf_cli.embedded.ports import free_port
from wf_common import bus, subjects
from wf_common.config import BusConfig
from wf_common.errors import BusError
from wf_common.jobs import Usage

from tests.orchestrator.hub import eventually

# `bus.consume` on the dev stage's job consumer.
_consume_dev = functools.partial(bus.consume, stream=subjects.JOBS_STREAM, durable="dev")


async def _pull_waiting(js: JetStreamContext) -> int:
    """How many pull requests the dev consumer holds at the server (truthy once one is there)."""
    return int((await js.consumer_info(subjects.JOBS_STREAM, "dev")).num_waiting)


async def test_unreachable_server_fails_with_a_message_that_says_what_to_do() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusError, match=r"could not connect to NATS at .*wf start") as refused:
        await bus.connect(url, "t", first_connect_timeout=2)
    # The reason is said, never left empty ("…:4222: . Is the stack…" before).
    assert f"{url}: no server answered within 2 s. Is the stack running" in str(refused.value)


async def test_topology_is_idempotent_and_jobs_dedupe_and_term(nats_server: NatsServer) -> None:
    nc = await bus.connect(nats_server.url, "t")
    try:
        await _dedupe_and_term(nc, nc.jetstream())
    finally:
        await nc.close()


async def _dedupe_and_term(nc: NATS, js: JetStreamContext) -> None:
    cfg = BusConfig(ack_wait_seconds=5, max_deliver=2)
    await bus.ensure_topology(js, cfg, ["pm", "dev"])
    await bus.ensure_topology(js, cfg, ["pm", "dev"])  # a second service starting does no harm
    first = await bus.publish(js, subjects.job_subject("dev"), Usage(model="m"), msg_id="k1")
    again = await bus.publish(js, subjects.job_subject("dev"), Usage(model="m"), msg_id="k1")
    assert first == again, "the same Nats-Msg-Id is stored once"
    seen: list[int] = []
    stop = asyncio.Event()

    async def handler(d: bus.Delivery) -> None:
        seen.append(d.num_delivered)
        await d.term("poison for the test")
        stop.set()

    await asyncio.wait_for(
        bus.consume(nc, js, stream=subjects.JOBS_STREAM, durable="dev", handler=handler, stop=stop), 10
    )
    assert seen == [1], "a terminated job is not delivered again"

    async def removed() -> bool:  # the term is sent without waiting for the server's reply
        return (await js.stream_info(subjects.JOBS_STREAM)).state.messages == 0

    await eventually(removed, within=5, what="the terminated job to leave the work-queue stream")


async def test_a_service_that_is_not_the_owner_only_looks_at_an_existing_topology(
    nats_server: NatsServer,
) -> None:
    """The owner (the orchestrator, `wf start`) brings streams and consumers to its config; another
    service (update_existing=False) leaves what exists as it is and makes only what is missing."""
    nc = await bus.connect(nats_server.url, "t")
    js = nc.jetstream()
    try:
        await bus.ensure_topology(js, BusConfig(events_max_age_days=7, ack_wait_seconds=60), ["dev"])
        await bus.ensure_topology(
            js, BusConfig(events_max_age_days=1, ack_wait_seconds=5), ["dev", "qa"], update_existing=False
        )
        events = await js.stream_info(subjects.EVENTS_STREAM)
        assert events.config.max_age == 7 * 86400
        assert (await js.consumer_info(subjects.JOBS_STREAM, "dev")).config.ack_wait == 60
        assert (await js.consumer_info(subjects.JOBS_STREAM, "qa")).config.ack_wait == 5  # was missing

        await bus.ensure_topology(js, BusConfig(events_max_age_days=1, ack_wait_seconds=5), ["dev"])
        assert (await js.stream_info(subjects.EVENTS_STREAM)).config.max_age == 86400
        assert (await js.consumer_info(subjects.JOBS_STREAM, "dev")).config.ack_wait == 5
    finally:
        await nc.close()


async def test_a_lone_message_reaches_its_handler_without_waiting_for_a_batch_to_fill(
    nats_server: NatsServer,
) -> None:
    """A consumer with 16 slots asks for up to 16 messages; one message published while it idles is
    handled as it arrives, not when the request expires or the batch fills. (With `fetch(16)` the
    orchestrator held some Results to the fetch's deadline: sec→docs hops of 60 to 175 ms behind its
    250 ms fetch in the real-runner bench, 3 to 10 ms with `fetch(1)` or this consumer.)"""
    nc = await bus.connect(nats_server.url, "t")
    js = nc.jetstream()
    await bus.ensure_topology(js, BusConfig(), ["dev"])
    got = asyncio.Event()
    stop = asyncio.Event()

    async def handler(d: bus.Delivery) -> None:
        got.set()

    expiry = 4.0
    consumer = asyncio.create_task(
        _consume_dev(nc, js, handler=handler, stop=stop, batch=16, concurrency=16, fetch_timeout=expiry)
    )
    try:
        await eventually(lambda: _pull_waiting(js), what="the consumer's pull request at the server")
        await bus.publish(js, subjects.job_subject("dev"), Usage(model="m"))
        try:
            await asyncio.wait_for(got.wait(), timeout=expiry / 2)
        except TimeoutError:
            pytest.fail(f"the message waited for the pull request to expire ({expiry} s)")
    finally:
        stop.set()
        await asyncio.wait_for(consumer, expiry + 5)
    info = await js.consumer_info(subjects.JOBS_STREAM, "dev")
    assert info.num_ack_pending == 0, "the handled message was acked"
    await nc.close()


async def test_a_burst_is_handled_once_each_and_never_beyond_the_concurrency(nats_server: NatsServer) -> None:
    nc = await bus.connect(nats_server.url, "t")
    js = nc.jetstream()
    await bus.ensure_topology(js, BusConfig(), ["dev"])
    for i in range(60):
        await bus.publish(js, subjects.job_subject("dev"), Usage(model=f"m{i}"))
    seen: list[str] = []
    active = 0
    most = 0
    stop = asyncio.Event()

    async def handler(d: bus.Delivery) -> None:
        nonlocal active, most
        active += 1
        most = max(most, active)
        await asyncio.sleep(0)  # let the others in
        await asyncio.sleep(0.001)
        seen.append(str(Usage.model_validate_json(d.data).model))
        active -= 1
        if len(seen) == 60:
            stop.set()

    await asyncio.wait_for(
        _consume_dev(nc, js, handler=handler, stop=stop, batch=8, concurrency=4, fetch_timeout=0.5),
        30,
    )
    assert sorted(seen) == sorted(f"m{i}" for i in range(60)), "each message handled exactly once"
    assert most == 4, "four handlers ran at once, never more"
    info = await js.consumer_info(subjects.JOBS_STREAM, "dev")
    assert (info.num_pending, info.num_ack_pending) == (0, 0), "all acked, nothing left behind"
    await nc.close()


async def test_a_message_that_reaches_a_stopping_consumer_goes_back_to_the_next_one(
    nats_server: NatsServer,
) -> None:
    """Stopping, the consumer still has a pull request at the server; a message published then is
    delivered to it. It must be given back (nak), not dropped with the inbox: with a 300 s ack wait
    the next consumer would otherwise not see it for five minutes."""
    nc = await bus.connect(nats_server.url, "t")
    js = nc.jetstream()
    await bus.ensure_topology(js, BusConfig(ack_wait_seconds=300), ["dev"])
    first: list[str | None] = []
    stop = asyncio.Event()

    async def record_first(d: bus.Delivery) -> None:
        first.append(Usage.model_validate_json(d.data).model)

    stopping = asyncio.create_task(
        _consume_dev(nc, js, handler=record_first, stop=stop, concurrency=2, fetch_timeout=3)
    )
    await eventually(lambda: _pull_waiting(js), what="the consumer's pull request at the server")
    stop.set()
    await bus.publish(js, subjects.job_subject("dev"), Usage(model="late"))
    await asyncio.wait_for(stopping, 10)
    assert first == [], "a stopping consumer starts no new work"

    second: list[tuple[str | None, int]] = []
    done = asyncio.Event()

    async def record_second(d: bus.Delivery) -> None:
        second.append((Usage.model_validate_json(d.data).model, d.num_delivered))
        done.set()

    await asyncio.wait_for(
        _consume_dev(nc, js, handler=record_second, stop=done),
        20,  # far below the ack wait
    )
    assert second == [("late", 2)], "delivered to the stopping consumer, given back, handled once"
    await nc.close()
