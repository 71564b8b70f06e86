"""/api/events: the live event stream as Server-Sent Events.

Each message is ``id: <stream sequence>``, ``event: <event type>``, ``data: <event JSON>`` (a
wf_common.events model). A browser's EventSource reconnects by itself and sends Last-Event-ID; the
stream then resumes right after that event, with nothing missed and nothing twice.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Annotated

import anyio
import nats.errors
from fastapi import APIRouter, Header, Query
from fastapi.responses import StreamingResponse
from nats.js import JetStreamContext
from nats.js.api import DeliverPolicy
from nats.js.errors import NotFoundError
from wf_common.fields import EventId, Slug, TaskKey
from wf_common.subjects import EVENTS_STREAM

from wf_board_api.errors import Unavailable
from wf_board_api.events import hub, sse, stream
from wf_board_api.schemas import ERROR_RESPONSES
from wf_board_api.state import AppState, State

log = logging.getLogger(__name__)
router = APIRouter(tags=["events"])

RECONNECT_MILLISECONDS = 2000
MAX_REPLAY = 1000
MAX_SEQUENCE = 10**18 - 1  # JetStream sequences are 64-bit; the header pattern allows 18 digits
_DESCRIPTION = """Server-Sent Events from the WF_EVENTS stream (`wf.events.>`).

Starts with new events. `Last-Event-ID` (sent by EventSource when it reconnects) or `?after=<id>`
resumes right after that event; `?since=<ISO time>` starts at a time; `?replay=N` first sends the
last N matching events. `?project=` and `?task=` narrow the stream; control events (pause/resume)
always come through. A `stream.gap` event says events were lost (aged out of the stream) and the
client should reload its state. A comment is sent every ~15 s when nothing happens.
"""


@router.get(
    "/api/events",
    response_class=StreamingResponse,
    description=_DESCRIPTION,
    responses={**ERROR_RESPONSES, 200: {"content": {"text/event-stream": {}}}},
)
async def stream_events(
    state: State,
    project: Annotated[Slug | None, Query(description="only events of this project")] = None,
    task: Annotated[TaskKey | None, Query(description="only events of this task key")] = None,
    after: Annotated[
        int | None, Query(ge=0, le=MAX_SEQUENCE, description="resume after this event id")
    ] = None,
    since: Annotated[datetime | None, Query(description="start at this time (ISO 8601)")] = None,
    replay: Annotated[int | None, Query(ge=1, le=MAX_REPLAY, description="first send the last N")] = None,
    last_event_id: Annotated[
        EventId | None, Header(alias="Last-Event-ID", description="id of the last event received")
    ] = None,
) -> StreamingResponse:
    # The header is what a reconnecting browser sends; it wins over the ?after/?replay of the first URL.
    resume = int(last_event_id) if last_event_id else after
    subjects = stream.filter_subjects(project, task)
    try:
        start = await _start(state.js, subjects, resume=resume, since=since, replay=replay)
        # Listen before answering: a client that got the response headers gets every later event.
        listener = await state.hub.listen(project, task)
        catch_up = await _catch_up(state.js, subjects, start, listener.after)
    except NotFoundError as err:
        raise Unavailable(f"the event stream {EVENTS_STREAM} does not exist yet ({err})") from err
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
    return StreamingResponse(
        _relay(state, listener, catch_up, start, resume),
        media_type="text/event-stream",
        # no-transform/X-Accel-Buffering: a proxy that buffers would hold events back.
        headers={"Cache-Control": "no-cache, no-transform", "X-Accel-Buffering": "no"},
    )


async def _start(
    js: JetStreamContext,
    subjects: list[str],
    *,
    resume: int | None,
    since: datetime | None,
    replay: int | None,
) -> stream.Start:
    if resume is not None:
        return await stream.resume_after(js, resume)
    if since is not None:
        when = since if since.tzinfo else since.replace(tzinfo=UTC)
        return stream.Start(DeliverPolicy.BY_START_TIME, time=when)
    if replay is not None:
        return await stream.replay_last(js, subjects, replay)
    return stream.Start(DeliverPolicy.NEW)


async def _catch_up(
    js: JetStreamContext, subjects: list[str], start: stream.Start, live_after: int
) -> JetStreamContext.PushSubscription | None:
    """A consumer of the client's own for what it missed before the hub's position, if anything."""
    if start.policy == DeliverPolicy.NEW or start.after >= live_after:
        return None
    if not await stream.count(js, start, subjects):
        return None
    return await stream.subscribe(js, subjects, start)


async def _relay(
    state: AppState,
    listener: hub.Listener,
    catch_up: JetStreamContext.PushSubscription | None,
    start: stream.Start,
    resume: int | None,
) -> AsyncIterator[bytes]:
    keepalive = state.settings.board_keepalive_seconds
    last_sent = start.after
    skip = start.skip
    try:
        yield sse.retry(RECONNECT_MILLISECONDS)
        yield sse.comment("connected")
        if start.gap_before is not None:
            gap = {"resumed_after": resume, "first_available": start.gap_before}
            yield sse.message(json.dumps(gap), event="stream.gap")
        if catch_up is not None:
            async for seq, message in _missed(state, catch_up, listener.after):
                if seq <= last_sent:
                    continue  # the ordered consumer was recreated from an older point: never twice
                last_sent = seq
                if skip:
                    skip -= 1
                    continue
                yield message
            await stream.close(state.js, catch_up)
            catch_up = None
        quiet_since = time.monotonic()
        # Wake at least every second so a server shutdown ends the stream promptly.
        while not state.stopping.is_set():
            delivery = await listener.next(wait=min(1.0, keepalive))
            if delivery is None:
                if listener.closed:
                    # The browser reconnects with its last id and catches up from the stream.
                    log.info("event stream ended: %s", listener.closed)
                    return
                if state.nc.is_closed:
                    return
                if time.monotonic() - quiet_since >= keepalive:
                    yield sse.comment("keep-alive")
                    quiet_since = time.monotonic()
                continue
            if delivery.seq <= last_sent:
                continue  # already sent while catching up: never twice
            last_sent = delivery.seq
            if skip:
                skip -= 1
                continue
            yield delivery.message
            quiet_since = time.monotonic()
    finally:
        state.hub.leave(listener)
        if catch_up is not None:
            # Runs when the client disconnects (the task is cancelled): shield the clean-up from that.
            with anyio.move_on_after(5, shield=True):
                await stream.close(state.js, catch_up)


async def _missed(
    state: AppState, sub: JetStreamContext.PushSubscription, live_after: int
) -> AsyncIterator[tuple[int, bytes]]:
    """The client's events before the hub's position: up to it, or until nothing more is pending."""
    while not state.stopping.is_set():
        try:
            msg = await sub.next_msg(timeout=1.0)
        except nats.errors.TimeoutError:
            # Nothing came (what was counted aged out meanwhile): done if nothing is pending.
            if not (await sub.consumer_info()).num_pending:
                return
            continue
        seq = int(msg.metadata.sequence.stream)
        yield seq, sse.message(msg.data, event=stream.event_type(msg.subject), id=seq)
        if seq >= live_after or not msg.metadata.num_pending:
            return
