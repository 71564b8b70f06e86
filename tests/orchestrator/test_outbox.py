"""The outbox, against a real JetStream and a real PostgreSQL: a Result's caller waits for the next
Job's ack only; the events are acked in the background and their rows stay in the outbox until they
are, so an event JetStream did not store is still there for the sweeper (nothing lost)."""

from __future__ import annotations

from sqlalchemy import select
from wf_cli.embedded import NatsServer
from wf_common import bus, subjects
from wf_common.config import WorkflowConfig
from wf_common.db.tables import outbox
from wf_orchestrator.db import create_engine
from wf_orchestrator.outbox import Outbox, Outgoing


async def test_an_event_jetstream_refuses_stays_in_the_outbox_while_the_job_is_published(
    nats_server: NatsServer, database_url: str
) -> None:
    nc = await bus.connect(nats_server.url, "test-outbox")
    engine = create_engine(database_url, pool_size=2)
    try:
        js = nc.jetstream()
        await bus.ensure_topology(js, WorkflowConfig().bus, ["dev"])
        box = Outbox(engine, js)
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
    finally:
        await engine.dispose()
        await nc.close()
