"""Local changes in: the bridge's durable consumer `sync-bridge` on WF_EVENTS. Each task event
refreshes the bridge's mirror of the task and queues a sync per target, and each feedback queues a
comment, in one transaction with the inbox row that makes a redelivery a no-op."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from pydantic import ValidationError
from sqlalchemy.ext.asyncio import AsyncEngine
from wf_common import bus, subjects
from wf_common.events import FeedbackAdded, TaskCreated, TaskMoved, TaskStateChanged, TaskUpdated, parse_event

from wf_sync_bridge import store
from wf_sync_bridge.syncer import TargetSync

log = logging.getLogger(__name__)

CONSUMER = subjects.SYNC_BRIDGE_CONSUMER
TASK_EVENTS = (TaskCreated, TaskUpdated, TaskMoved, TaskStateChanged)


async def ensure_consumer(js: JetStreamContext) -> None:
    await bus.ensure_consumer(
        js,
        subjects.EVENTS_STREAM,
        ConsumerConfig(
            durable_name=CONSUMER,
            filter_subject=f"{subjects.EVENTS_PREFIX}.>",
            ack_policy=AckPolicy.EXPLICIT,
            ack_wait=30,
            max_deliver=-1,
            max_ack_pending=1000,
            deliver_policy=DeliverPolicy.ALL,
        ),
    )


class Intake:
    def __init__(self, db: AsyncEngine, targets: Iterable[TargetSync]) -> None:
        self.db = db
        self.targets = list(targets)

    async def handle(self, d: bus.Delivery) -> None:
        try:
            event = parse_event(d.data)
        except ValidationError:
            return  # an event type of a newer writer: nothing the bridge mirrors
        if isinstance(event, TASK_EVENTS):
            await self.on_task(event, d.stream_seq)
        elif isinstance(event, FeedbackAdded):
            await self.on_feedback(event)

    async def on_task(
        self, event: TaskCreated | TaskUpdated | TaskMoved | TaskStateChanged, seq: int
    ) -> None:
        task = event.task
        targets = [t for t in self.targets if t.covers(task.project)]
        async with self.db.begin() as conn:
            if await store.seen(conn, "events", event.id):
                return
            newer = await store.save_mirror(conn, task.project, task.key, task.model_dump(mode="json"), seq)
            if not newer:
                return
            for t in targets:
                await store.enqueue(conn, t.name, task.project, task.key, "sync")
        for t in targets:
            t.wake.set()

    async def on_feedback(self, event: FeedbackAdded) -> None:
        if not event.project or not event.task_key:
            return
        targets = [t for t in self.targets if t.covers(event.project) and event.actor != t.actor]
        async with self.db.begin() as conn:
            if await store.seen(conn, "events", event.id):
                return
            for t in targets:
                await store.enqueue(
                    conn,
                    t.name,
                    event.project,
                    event.task_key,
                    "comment",
                    {"ref": event.id, "text": event.text, "actor": event.actor},
                )
        for t in targets:
            t.wake.set()
