"""Reading WF_EVENTS for one client: where to start, and an ordered consumer from there.

Live events come from the process's one hub (`wf_board_api.events.hub`). A client that starts
before the hub's position (a reconnect, ?since, ?replay) first reads what it missed with an ordered
consumer of its own (ephemeral, in memory, no acks): JetStream delivers the stream's messages in
sequence and the client library recreates the consumer from the next sequence if one goes missing.
The stream sequence is the SSE `id`, which is why a reconnect with Last-Event-ID can resume without
a gap, and why the switch from that consumer to the hub needs no more than "skip what you sent".
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from datetime import datetime

from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from wf_common.subjects import EVENTS_PREFIX, EVENTS_STREAM, SYSTEM_TOKEN

log = logging.getLogger(__name__)

# A consumer whose client vanished without a clean close (the process was killed) is removed by the
# server after this long.
INACTIVE_THRESHOLD_SECONDS = 30.0


def filter_subjects(project: str | None, task: str | None) -> list[str]:
    """wf.events.<project>.<task>.> narrowed by what the client asked for (tokens already validated).

    Events about no project (control.changed: pause/resume) go to every client: each board shows it.
    """
    if project is None and task is None:
        return [f"{EVENTS_PREFIX}.>"]
    return [
        f"{EVENTS_PREFIX}.{project or '*'}.{task or '*'}.>",
        f"{EVENTS_PREFIX}.{SYSTEM_TOKEN}.{SYSTEM_TOKEN}.>",
    ]


def matches(subject: str, project: str | None, task: str | None) -> bool:
    """Whether `filter_subjects(project, task)` takes this event subject (the hub's fan-out test)."""
    parts = subject.split(".", 4)
    if len(parts) < 5:
        return False
    if parts[2] == SYSTEM_TOKEN and parts[3] == SYSTEM_TOKEN:
        return True
    return (project is None or parts[2] == project) and (task is None or parts[3] == task)


def event_type(subject: str) -> str:
    """wf.events.<project>.<task>.task.moved → task.moved (the type is in the subject, no parse needed)."""
    parts = subject.split(".")
    return ".".join(parts[4:]) if len(parts) > 4 else "message"


@dataclass(frozen=True)
class Start:
    """Where a client's stream begins. `skip` drops that many matching events first (for replay)."""

    policy: DeliverPolicy
    seq: int | None = None
    time: datetime | None = None
    skip: int = 0
    # Never send an event at or below this sequence (what the client already has).
    after: int = 0
    # Set when the client asked to resume from an event the stream no longer has (aged out) or never
    # had (the stream was recreated): the first sequence it will get. It should reload what it shows.
    gap_before: int | None = None

    def config(self, subjects: list[str]) -> ConsumerConfig:
        return ConsumerConfig(
            filter_subjects=subjects,
            deliver_policy=self.policy,
            opt_start_seq=self.seq,
            opt_start_time=self.time,
            inactive_threshold=INACTIVE_THRESHOLD_SECONDS,
        )


async def resume_after(js: JetStreamContext, seq: int) -> Start:
    state = (await js.stream_info(EVENTS_STREAM)).state
    if seq > state.last_seq:
        # An id this stream never gave out: the stream was recreated (a new data directory) while a
        # browser kept its old id. Waiting for that sequence would show nothing for a long time.
        return Start(DeliverPolicy.NEW, gap_before=state.last_seq + 1)
    gap = state.first_seq if seq + 1 < state.first_seq else None
    return Start(DeliverPolicy.BY_START_SEQUENCE, seq=seq + 1, gap_before=gap, after=seq)


async def replay_last(js: JetStreamContext, subjects: list[str], count: int) -> Start:
    """Start so the client first gets the last `count` events matching `subjects`, then new ones.

    JetStream cannot count backwards on a filter, so look at growing windows at the end of the stream
    (a throwaway consumer's num_pending counts the matching events in a window) until one holds
    `count` matches or covers the whole stream, then skip the surplus at its start.
    """
    state = (await js.stream_info(EVENTS_STREAM)).state
    if not state.messages:
        return Start(DeliverPolicy.NEW)
    window = count
    while True:
        first = max(state.first_seq, state.last_seq - window + 1)
        matching = await _count_from(js, subjects, first)
        if matching >= count or first == state.first_seq:
            return Start(DeliverPolicy.BY_START_SEQUENCE, seq=first, skip=max(0, matching - count))
        window *= 4


async def _count_from(js: JetStreamContext, subjects: list[str], seq: int) -> int:
    return await count(js, Start(DeliverPolicy.BY_START_SEQUENCE, seq=seq), subjects)


async def count(js: JetStreamContext, start: Start, subjects: list[str]) -> int:
    """How many events matching `subjects` the stream holds from `start` on (a throwaway consumer's
    num_pending)."""
    config = start.config(subjects)
    config.ack_policy = AckPolicy.NONE
    config.mem_storage = True
    info = await js.add_consumer(EVENTS_STREAM, config)
    with contextlib.suppress(Exception):
        await js.delete_consumer(EVENTS_STREAM, info.name)
    return int(info.num_pending or 0)


async def subscribe(
    js: JetStreamContext, subjects: list[str], start: Start
) -> JetStreamContext.PushSubscription:
    return await js.subscribe(
        subjects[0], stream=EVENTS_STREAM, ordered_consumer=True, config=start.config(subjects)
    )


async def close(js: JetStreamContext, sub: JetStreamContext.PushSubscription) -> None:
    """Stop delivery and remove the consumer now rather than when the server notices it is idle."""
    name: str | None = None
    with contextlib.suppress(Exception):
        name = (await sub.consumer_info()).name
    with contextlib.suppress(Exception):
        await sub.unsubscribe()
    if name:
        with contextlib.suppress(Exception):
            await js.delete_consumer(EVENTS_STREAM, name)
