"""NATS helpers against a real server: topology, de-duplication, term, and a clear connect error."""

import asyncio

import pytest
from wf_cli.embedded import NatsServer
from wf_cli.embedded.ports import free_port
from wf_common import bus, subjects
from wf_common.config import BusConfig
from wf_common.errors import BusError
from wf_common.jobs import Usage


async def test_unreachable_server_fails_with_a_message_that_says_what_to_do() -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    with pytest.raises(BusError, match=r"could not connect to NATS at .*wf start") as refused:
        await bus.connect(url, "t", first_connect_timeout=2)
    # The reason is said, never left empty ("…:4222: . Is the stack…" before).
    assert f"{url}: no server answered within 2 s. Is the stack running" in str(refused.value)


async def test_topology_is_idempotent_and_jobs_dedupe_and_term(nats_server: NatsServer) -> None:
    nc = await bus.connect(nats_server.url, "t")
    js = nc.jetstream()
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
    info = await js.stream_info(subjects.JOBS_STREAM)
    assert seen == [1] and info.state.messages == 0, "a terminated job is not left in the stream"  # noqa: PT018 - one condition
    await nc.close()


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
