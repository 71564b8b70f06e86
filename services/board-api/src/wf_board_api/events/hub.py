"""One reader of WF_EVENTS per board API process, fanned out to every open event stream.

A board page or `wf watch` used to get an ordered consumer of its own: with 20 pages open, JetStream
delivered each event 20 times and this process parsed it 20 times. The hub holds the only live
consumer (ordered, in memory, started at the stream's end when the first client comes), encodes each
event as an SSE message once and hands the same bytes to every listener whose filter it matches.

A listener registered while the hub has seen up to sequence H gets every event after H, in order:
registering and fanning out both run on the event loop without an await between "the hub saw seq"
and "the listeners got it". What a client missed before H (a reconnect with Last-Event-ID, ?since,
?replay) it reads with a consumer of its own first (`wf_board_api.events.endpoints`), then it
switches to its listener; the stream sequence, which every event carries, removes the overlap.

A listener that falls too far behind (a stalled client) is closed rather than buffered without end;
its browser reconnects with its last id and catches up from the stream, so nothing is lost.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
from dataclasses import dataclass, field

import nats.errors
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import ConsumerConfig, DeliverPolicy
from wf_common.subjects import EVENTS_PREFIX, EVENTS_STREAM

from wf_board_api.events import sse, stream

log = logging.getLogger(__name__)

# Events a listener may have waiting before it is closed (its client then resumes from the stream).
MAX_BACKLOG = 10_000


@dataclass(frozen=True)
class Delivery:
    seq: int
    message: bytes  # the encoded SSE message, shared by every listener


@dataclass(eq=False)
class Listener:
    project: str | None
    task: str | None
    # The last sequence the hub had seen when this listener was registered: it gets everything after.
    after: int
    _backlog: collections.deque[Delivery] = field(default_factory=collections.deque)
    _ready: asyncio.Event = field(default_factory=asyncio.Event)
    closed: str | None = None  # why the hub stopped feeding this listener

    def offer(self, subject: str, delivery: Delivery) -> None:
        if self.closed or not stream.matches(subject, self.project, self.task):
            return
        if len(self._backlog) >= MAX_BACKLOG:
            self.close(f"more than {MAX_BACKLOG} events waiting for the client")
            return
        self._backlog.append(delivery)
        self._ready.set()

    def close(self, reason: str) -> None:
        self.closed = reason
        self._backlog.clear()
        self._ready.set()

    async def next(self, wait: float) -> Delivery | None:
        """The next event, or None after `wait` seconds without one (or once closed)."""
        if not self._backlog and not self.closed:
            self._ready.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._ready.wait(), wait)
        if self._backlog:
            return self._backlog.popleft()
        return None


class EventHub:
    def __init__(self, js: JetStreamContext) -> None:
        self._js = js
        self._listeners: set[Listener] = set()
        self._sub: JetStreamContext.PushSubscription | None = None
        self._lock = asyncio.Lock()
        self.last_seq = 0

    async def listen(self, project: str | None, task: str | None) -> Listener:
        """A listener for every event after the hub's current position that matches the filter."""
        async with self._lock:
            if self._sub is None:
                await self._start()
        listener = Listener(project, task, after=self.last_seq)
        self._listeners.add(listener)
        return listener

    def leave(self, listener: Listener) -> None:
        self._listeners.discard(listener)

    async def _start(self) -> None:
        last = (await self._js.stream_info(EVENTS_STREAM)).state.last_seq
        self.last_seq = last
        config = ConsumerConfig(
            deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=last + 1,
            inactive_threshold=stream.INACTIVE_THRESHOLD_SECONDS,
        )
        self._sub = await self._js.subscribe(
            f"{EVENTS_PREFIX}.>", stream=EVENTS_STREAM, ordered_consumer=True, config=config, cb=self._on_msg
        )

    async def _on_msg(self, msg: Msg) -> None:
        seq = int(msg.metadata.sequence.stream)
        if seq <= self.last_seq:
            return  # the ordered consumer was recreated from an older point: never twice
        self.last_seq = seq
        if not self._listeners:
            return
        delivery = Delivery(seq, sse.message(msg.data, event=stream.event_type(msg.subject), id=seq))
        for listener in tuple(self._listeners):
            listener.offer(msg.subject, delivery)

    async def close(self) -> None:
        for listener in tuple(self._listeners):
            listener.close("the board API is stopping")
        self._listeners.clear()
        sub, self._sub = self._sub, None
        if sub is not None:
            with contextlib.suppress(nats.errors.Error):
                await sub.unsubscribe()
