"""/api/events: live events as SSE over a real HTTP server, with resume by Last-Event-ID."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import httpx
from nats.js import JetStreamContext
from wf_board_api.app import create_app
from wf_board_api.settings import BoardSettings
from wf_common import bus
from wf_common.events import (
    AgentOutput,
    ControlChanged,
    Event,
    TaskSnapshot,
    TaskStateChanged,
    parse_event,
)
from wf_common.subjects import EVENTS_STREAM

from tests.board.conftest import AUTH_HEADERS, serve
from tests.board.sse import SSE, open_stream


def task_event(project: str, key: str, to_state: str = "running") -> TaskStateChanged:
    snapshot = TaskSnapshot(
        project=project, key=key, title=f"Task {key}", stage="dev", state=to_state, priority=5
    )
    return TaskStateChanged(
        project=project,
        task_key=key,
        task=snapshot,
        from_state="queued",
        to_state=to_state,
        actor="orchestrator",
    )


async def publish(js: JetStreamContext, event: Event) -> int:
    return await bus.publish(js, event.subject(), event)


def assert_is(received: SSE, seq: int, event: Event) -> None:
    assert received.id == str(seq)
    assert received.event == event.type
    assert parse_event(received.data) == event


async def test_streams_new_events_of_the_project_and_control_events(
    live_url: str, js: JetStreamContext
) -> None:
    await publish(js, task_event("listsnap", "T-001"))  # before connecting: not sent (new events only)
    async with open_stream(live_url, {"project": "listsnap"}) as stream:
        assert stream.retry == 2000
        moved = task_event("listsnap", "T-001", "awaiting_approval")
        elsewhere = task_event("other", "T-001")
        output = AgentOutput(
            project="listsnap",
            task_key="T-002",
            execution_id=7,
            stage="dev",
            kind="token",
            text='line one\nline two </script> "quoted"',
        )
        paused = ControlChanged(paused=True, actor="mz")
        s1 = await publish(js, moved)
        await publish(js, elsewhere)
        s3 = await publish(js, output)
        s4 = await publish(js, paused)

        first, second, third = await stream.take(3)
        assert_is(first, s1, moved)
        assert_is(second, s3, output)  # newlines in model output survive the SSE framing
        assert_is(third, s4, paused)  # pause/resume reaches every board


async def test_task_filter_narrows_to_one_task(live_url: str, js: JetStreamContext) -> None:
    async with open_stream(live_url, {"project": "listsnap", "task": "t-002"}) as stream:
        await publish(js, task_event("listsnap", "T-001"))
        wanted = task_event("listsnap", "T-002")
        seq = await publish(js, wanted)
        assert_is(await stream.next(), seq, wanted)


async def test_reconnect_with_last_event_id_gets_exactly_the_missed_events(
    live_url: str, js: JetStreamContext
) -> None:
    params = {"project": "listsnap"}
    async with open_stream(live_url, params) as stream:
        for key in ("T-001", "T-002"):
            await publish(js, task_event("listsnap", key))
        seen = await stream.take(2)
    last_id = seen[-1].id
    assert last_id is not None

    # While the client is away: three of its events, mixed with another project's.
    missed = []
    for key in ("T-003", "T-004", "T-005"):
        await publish(js, task_event("other", key))
        event = task_event("listsnap", key)
        missed.append((await publish(js, event), event))

    async with open_stream(live_url, params, headers={"Last-Event-ID": last_id}) as stream:
        got = await stream.take(3)
        for received, (seq, event) in zip(got, missed, strict=True):
            assert_is(received, seq, event)
        # Nothing twice: the next thing on the stream is the next new event.
        after = task_event("listsnap", "T-006")
        seq = await publish(js, after)
        assert_is(await stream.next(), seq, after)

    # ?after= does the same for clients that cannot set headers; the header wins when both are there.
    async with open_stream(live_url, {**params, "after": str(missed[1][0])}) as stream:
        assert_is(await stream.next(), *missed[2])
    async with open_stream(
        live_url, {**params, "after": "0"}, headers={"Last-Event-ID": str(missed[1][0])}
    ) as s:
        assert_is(await s.next(), *missed[2])


async def test_replay_sends_the_last_n_matching_events_then_new_ones(
    live_url: str, js: JetStreamContext
) -> None:
    mine = []
    for i in range(1, 8):
        await publish(js, task_event("other", f"T-{i:03}"))
        event = task_event("listsnap", f"T-{i:03}")
        mine.append((await publish(js, event), event))
    for i in range(8, 20):  # a run of other events after them: the window must reach back past these
        await publish(js, task_event("other", f"T-{i:03}"))

    async with open_stream(live_url, {"project": "listsnap", "replay": "3"}) as stream:
        for received, expected in zip(await stream.take(3), mine[-3:], strict=True):
            assert_is(received, *expected)
        new = task_event("listsnap", "T-100")
        seq = await publish(js, new)
        assert_is(await stream.next(), seq, new)


async def test_since_starts_at_a_time(live_url: str, js: JetStreamContext) -> None:
    await publish(js, task_event("listsnap", "T-001"))
    await asyncio.sleep(0.05)
    since = datetime.now(UTC)
    await asyncio.sleep(0.05)
    later = task_event("listsnap", "T-002")
    seq = await publish(js, later)
    async with open_stream(live_url, {"project": "listsnap", "since": since.isoformat()}) as stream:
        assert_is(await stream.next(), seq, later)


async def test_events_lost_from_the_stream_are_reported_as_a_gap(live_url: str, js: JetStreamContext) -> None:
    old = await publish(js, task_event("listsnap", "T-001"))
    await publish(js, task_event("listsnap", "T-002"))
    await js.purge_stream(EVENTS_STREAM)  # what max_age does to a client away for too long
    async with open_stream(live_url, {"project": "listsnap"}, headers={"Last-Event-ID": str(old)}) as stream:
        gap = await stream.next()
        assert gap.event == "stream.gap"
        assert gap.id is None
        assert gap.json() == {"resumed_after": old, "first_available": old + 2}
        new = task_event("listsnap", "T-003")
        seq = await publish(js, new)
        assert_is(await stream.next(), seq, new)


async def test_an_id_from_a_recreated_stream_restarts_at_new_events(
    live_url: str, js: JetStreamContext
) -> None:
    await publish(js, task_event("listsnap", "T-001"))
    last = await publish(js, task_event("listsnap", "T-002"))
    # A browser tab kept open across a fresh `wf start` remembers an id from the old stream.
    async with open_stream(live_url, {"project": "listsnap"}, headers={"Last-Event-ID": "999"}) as stream:
        gap = await stream.next()
        assert gap.event == "stream.gap"
        assert gap.json() == {"resumed_after": 999, "first_available": last + 1}
        new = task_event("listsnap", "T-003")
        seq = await publish(js, new)
        assert_is(await stream.next(), seq, new)


async def consumers(js: JetStreamContext) -> int:
    return int((await js.stream_info(EVENTS_STREAM)).state.consumer_count)


async def test_open_streams_share_one_consumer(settings: BoardSettings, js: JetStreamContext) -> None:
    before = await consumers(js)
    async with (
        serve(create_app(settings)) as url,
        open_stream(url, {"project": "listsnap"}) as first,
        open_stream(url, {"project": "other"}) as second,
        open_stream(url) as third,
    ):
        # The board API's hub reads the stream once for every client.
        assert await consumers(js) == before + 1
        event = task_event("listsnap", "T-001")
        seq = await publish(js, event)
        assert_is(await first.next(), seq, event)
        assert_is(await third.next(), seq, event)
        other = task_event("other", "T-002")
        seq = await publish(js, other)
        assert_is(await second.next(), seq, other)  # the listsnap event was not sent to it
        assert_is(await third.next(), seq, other)


async def test_catch_up_consumer_is_removed_once_caught_up(live_url: str, js: JetStreamContext) -> None:
    async with open_stream(live_url, {"project": "listsnap"}):
        pass  # the hub is running now
    with_hub = await consumers(js)
    last = await publish(js, task_event("listsnap", "T-001"))
    missed = task_event("listsnap", "T-002")
    seq = await publish(js, missed)
    async with open_stream(live_url, {"project": "listsnap"}, headers={"Last-Event-ID": str(last)}) as stream:
        assert_is(await stream.next(), seq, missed)
        for _ in range(100):
            if await consumers(js) == with_hub:
                break
            await asyncio.sleep(0.05)
        assert await consumers(js) == with_hub
        new = task_event("listsnap", "T-003")
        seq = await publish(js, new)
        assert_is(await stream.next(), seq, new)


async def test_quiet_stream_gets_keep_alive_comments(settings: BoardSettings, js: JetStreamContext) -> None:
    quick = settings.model_copy(update={"board_keepalive_seconds": 0.2})
    async with serve(create_app(quick)) as url, open_stream(url) as stream:
        await stream.wait_for_comment("keep-alive", within=5)
        event = ControlChanged(paused=False)
        seq = await publish(js, event)
        assert_is(await stream.next(), seq, event)


async def test_bad_stream_parameters_are_422(live_url: str, js: JetStreamContext) -> None:
    async with httpx.AsyncClient(base_url=live_url, headers=AUTH_HEADERS) as http:
        cases = [
            (
                {"headers": {"Last-Event-ID": "abc"}},
                "header.Last-Event-ID: Value error, 'abc' is not a valid event id",
            ),
            ({"params": {"project": "a.b"}}, "query.project: Value error, 'a.b' is not a valid project slug"),
            ({"params": {"task": "T-*"}}, "query.task: Value error, 'T-*' is not a valid task key"),
            ({"params": {"replay": "5000"}}, "query.replay: Input should be less than or equal to 1000"),
            ({"params": {"after": "-1"}}, "query.after: Input should be greater than or equal to 0"),
        ]
        for kwargs, message in cases:
            response = await http.get("/api/events", **kwargs)  # type: ignore[arg-type]
            assert response.status_code == 422
            assert response.json()["message"].startswith(message), response.json()


async def test_stream_ends_when_the_server_stops(settings: BoardSettings, js: JetStreamContext) -> None:
    app = create_app(settings)
    async with serve(app) as url, open_stream(url) as stream:
        app.state.stopping.set()  # what a SIGTERM does (wf_board_api.__main__)
        ended = False
        try:
            await stream.next(within=5)
        except StopAsyncIteration:
            ended = True
        assert ended
