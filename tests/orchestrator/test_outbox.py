"""The outbox, against a real JetStream and a real PostgreSQL: a Result's caller waits for the next
Job's ack only; the events are acked in the background and their rows stay in the outbox until they
are, so an event JetStream did not store is still there for the sweeper (nothing lost)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import nats.js.errors
import pytest
from nats.js import JetStreamContext
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_cli.embedded import NatsServer
from wf_common import bus, subjects
from wf_common.config import WorkflowConfig
from wf_common.db.tables import outbox
from wf_orchestrator import outbox as outbox_module
from wf_orchestrator.db import create_engine
from wf_orchestrator.outbox import Outbox, Outgoing


@contextlib.asynccontextmanager
async def an_outbox(
    nats_url: str, database_url: str
) -> AsyncIterator[tuple[Outbox, JetStreamContext, AsyncEngine]]:
    """An Outbox on a real JetStream (the workflow's streams made) and a real PostgreSQL."""
    nc = await bus.connect(nats_url, "test-outbox")
    engine = create_engine(database_url, pool_size=2)
    try:
        js = nc.jetstream()
        await bus.ensure_topology(js, WorkflowConfig().bus, ["dev"])
        yield Outbox(engine, js), js, engine
    finally:
        await engine.dispose()
        await nc.close()


async def test_an_event_jetstream_refuses_stays_in_the_outbox_while_the_job_is_published(
    nats_server: NatsServer, database_url: str
) -> None:
    async with an_outbox(nats_server.url, database_url) as (box, js, engine):
        job = Outgoing(subjects.job_subject("dev"), b'{"job": 1}', "demo/T-001/dev/1")
        # No stream takes this subject: JetStream answers with an error, the event is not stored.
        event = Outgoing("nowhere.event", b'{"event": 1}', "event-1")
        async with engine.begin() as conn:
            stored = await box.store(conn, [job, event])

        await box.publish(stored, events_behind=True)  # returns once the Job is acked
        msg = await js.get_last_msg(subjects.JOBS_STREAM, job.subject)
        assert msg.data == job.payload

        await box.settle()
        await box.flush()
        async with engine.connect() as conn:
            left = (await conn.execute(select(outbox.c.msg_id))).scalars().all()
        assert left == ["event-1"]  # the Job's row is deleted; the refused event waits for the sweeper


async def test_the_events_go_out_once_the_job_is_stored_and_stay_when_it_is_not(
    nats_server: NatsServer, database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # nats-py raises inside its reply handler for a refused publication instead of failing the
    # future (APIError.from_error raises), so a refusal surfaces as the publish timeout: shortened here.
    monkeypatch.setattr(outbox_module, "PUBLISH_TIMEOUT", 1.0)
    async with an_outbox(nats_server.url, database_url) as (box, js, engine):
        event_subject = subjects.event_subject("demo", "T-001", "task.moved")
        # The jobs stream takes no message this large: JetStream refuses the Job, the caller is told.
        jobs = (await js.stream_info(subjects.JOBS_STREAM)).config
        jobs.max_msg_size = 8
        await js.update_stream(jobs)
        refused = Outgoing(subjects.job_subject("dev"), b'{"job": 2}', "demo/T-001/dev/1")
        event = Outgoing(event_subject, b'{"event": 2}', "event-2")
        async with engine.begin() as conn:
            stored = await box.store(conn, [refused, event])
        before = (await js.stream_info(subjects.EVENTS_STREAM)).state.messages
        with pytest.raises((nats.js.errors.APIError, TimeoutError)):
            await box.publish(stored, events_behind=True)
        await box.settle()
        assert (await js.stream_info(subjects.EVENTS_STREAM)).state.messages == before  # not sent ahead
        await box.flush()
        async with engine.connect() as conn:
            left = sorted((await conn.execute(select(outbox.c.msg_id))).scalars().all())
        assert left == ["demo/T-001/dev/1", "event-2"]  # both wait for the sweeper, nothing lost
