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
