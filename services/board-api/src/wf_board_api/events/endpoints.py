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
from wf_board_api.events import sse, stream
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
        # Subscribe before answering: a client that got the response headers is already subscribed.
        sub = await stream.subscribe(state.js, subjects, start)
    except NotFoundError as err:
        raise Unavailable(f"the event stream {EVENTS_STREAM} does not exist yet ({err})") from err
    except nats.errors.Error as err:
        raise Unavailable(f"NATS is not answering ({err or type(err).__name__})") from err
    return StreamingResponse(
        _relay(state, sub, start, resume),
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


async def _relay(
    state: AppState, sub: JetStreamContext.PushSubscription, start: stream.Start, resume: int | None
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
        quiet_since = time.monotonic()
        # Wake at least every second so a server shutdown ends the stream promptly.
        while not state.stopping.is_set():
            try:
                msg = await sub.next_msg(timeout=min(1.0, keepalive))
            except nats.errors.TimeoutError:
                if time.monotonic() - quiet_since >= keepalive:
                    yield sse.comment("keep-alive")
                    quiet_since = time.monotonic()
                continue
            except nats.errors.Error as err:
                # The connection closed (service stopping): end; the browser reconnects with its last id.
                log.info("event stream ended: %s", err or type(err).__name__)
                return
            seq = int(msg.metadata.sequence.stream)
            if seq <= last_sent:
                continue  # never twice, even if the ordered consumer was recreated from an older point
            last_sent = seq
            if skip:
                skip -= 1
                continue
            yield sse.message(msg.data, event=stream.event_type(msg.subject), id=seq)
            quiet_since = time.monotonic()
    finally:
        # Runs when the client disconnects (the task is cancelled): shield the clean-up from that.
        with anyio.move_on_after(5, shield=True):
            await stream.close(state.js, sub)
