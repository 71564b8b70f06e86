"""Only the orchestrator's NATS login changes the JetStream topology: against the embedded server with
the logins and permissions `wf start` gives it (wf_cli.credentials) and the topology `wf start`
declares before it starts the services (wf_cli.topology).

Another login (a runner, the board, the sync bridge, the CLI) is refused making a stream (one that
would capture or republish another service's messages), deleting or purging a WF stream, and making,
deleting or draining a consumer on another service's stream; what its own service does with
JetStream at start and at work still works."""

from __future__ import annotations

import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import nats
import pytest
from nats.aio.client import Client as NATS
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy, RePublish, StreamConfig
from pydantic import BaseModel
from wf_cli.credentials import NATS_KINDS, Credentials
from wf_cli.embedded import NatsServer
from wf_cli.topology import declare_topology
from wf_common import bus, subjects
from wf_common.config import WorkflowConfig
from wf_common.errors import BusError
from wf_sync_bridge.intake import ensure_consumer as ensure_sync_consumer

from tests.orchestrator.hub import eventually

NON_OWNERS = tuple(kind for kind in NATS_KINDS if kind != "orchestrator")
# A refused JetStream request goes unanswered (the server reports the violation on the connection):
# the client gives up after this long.
REFUSED_AFTER = 1.0


@dataclass
class Login:
    nc: NATS
    js: JetStreamContext
    errors: list[str] = field(default_factory=list)

    async def refused(self, subject: str) -> bool:
        # nats-py lowercases the server's message.
        return any("permissions violation" in e.lower() and subject.lower() in e.lower() for e in self.errors)


@dataclass
class Bus:
    server: NatsServer
    workflow: WorkflowConfig
    owner: JetStreamContext  # the orchestrator's login
    logins: dict[str, Login]

    async def login(self, kind: str) -> Login:
        login = self.logins.get(kind)
        if login is None:
            errors: list[str] = []

            async def on_error(err: Exception) -> None:
                errors.append(str(err))

            nc = await nats.connect(self.server.url_for(kind), allow_reconnect=False, error_cb=on_error)
            login = self.logins[kind] = Login(nc, nc.jetstream(timeout=REFUSED_AFTER), errors)
        return login

    async def stream_names(self) -> list[str]:
        return [s.config.name or "" for s in await self.owner.streams_info()]

    async def consumer_names(self, stream: str) -> list[str]:
        return [c.name for c in await self.owner.consumers_info(stream)]


async def _servers(tmp_path: Path, *, declared: bool) -> AsyncIterator[Bus]:
    passwords = {kind: secrets.token_urlsafe(24) for kind in NATS_KINDS}
    users = Credentials(api_token="unused", postgres={}, nats=passwords).nats_users()
    workflow = WorkflowConfig()
    with NatsServer(tmp_path / "nats", users=users) as server:
        if declared:
            await declare_topology(server.url_for("orchestrator"), workflow)
        owner = await nats.connect(server.url_for("orchestrator"), allow_reconnect=False)
        b = Bus(server, workflow, owner.jetstream(), {})
        try:
            yield b
        finally:
            for login in b.logins.values():
                await login.nc.close()
            await owner.close()


@pytest.fixture
async def hub_bus(tmp_path: Path) -> AsyncIterator[Bus]:
    """The topology as `wf start` leaves it before it starts the services."""
    async for b in _servers(tmp_path, declared=True):
        yield b


@pytest.fixture
async def empty_bus(tmp_path: Path) -> AsyncIterator[Bus]:
    """The embedded server with its logins, nothing declared yet."""
    async for b in _servers(tmp_path, declared=False):
        yield b


async def _refused(login: Login, subject: str) -> None:
    await eventually(lambda: login.refused(subject), what=f"the server refusing {subject}: {login.errors}")


CAPTURES = [
    # A stream on another service's subjects would take its messages (WF_JOBS is a work queue) ...
    StreamConfig(name="CAPTURE", subjects=["wf.cmd.>"]),
    # ... and one that republishes could pass them off on a subject the login may not publish on.
    StreamConfig(
        name="CAPTURE", subjects=["wf.capture.>"], republish=RePublish(src=">", dest="wf.results.dev")
    ),
]


@pytest.mark.parametrize("kind", NON_OWNERS)
@pytest.mark.parametrize("config", CAPTURES, ids=["capture", "republish"])
async def test_a_non_owner_login_is_refused_making_a_stream(
    hub_bus: Bus, kind: str, config: StreamConfig
) -> None:
    login = await hub_bus.login(kind)
    with pytest.raises(nats.errors.TimeoutError):
        await login.js.add_stream(config)
    await _refused(login, "$JS.API.STREAM.CREATE.CAPTURE")
    assert "CAPTURE" not in await hub_bus.stream_names()


@pytest.mark.parametrize("kind", NON_OWNERS)
@pytest.mark.parametrize("stream", [subjects.JOBS_STREAM, subjects.EVENTS_STREAM, "KV_wf_control"])
async def test_a_non_owner_login_is_refused_deleting_or_purging_a_wf_stream(
    hub_bus: Bus, kind: str, stream: str
) -> None:
    await hub_bus.owner.publish(subjects.event_subject("demo", "T-001", "task.created"), b"{}")
    before = (await hub_bus.owner.stream_info(subjects.EVENTS_STREAM)).state.messages
    login = await hub_bus.login(kind)
    with pytest.raises(nats.errors.TimeoutError):
        await login.js.delete_stream(stream)
    with pytest.raises(nats.errors.TimeoutError):
        await login.js.purge_stream(stream)
    await _refused(login, f"$JS.API.STREAM.DELETE.{stream}")
    await _refused(login, f"$JS.API.STREAM.PURGE.{stream}")
    assert stream in await hub_bus.stream_names()
    assert (await hub_bus.owner.stream_info(subjects.EVENTS_STREAM)).state.messages == before


# (login, stream): another service's stream, on which that login may not make a consumer.
FOREIGN_STREAMS = [
    ("runner", subjects.RESULTS_STREAM),  # the orchestrator's results
    ("runner", subjects.EVENTS_STREAM),
    ("board", subjects.JOBS_STREAM),  # the runners' job queues
    ("board", subjects.RESULTS_STREAM),
    ("sync-bridge", subjects.JOBS_STREAM),
    ("sync-bridge", subjects.ADVISORIES_STREAM),
    ("cli", subjects.RESULTS_STREAM),
    ("cli", subjects.JOBS_STREAM),
]


@pytest.mark.parametrize(("kind", "stream"), FOREIGN_STREAMS)
async def test_a_login_is_refused_a_consumer_on_another_services_stream(
    hub_bus: Bus, kind: str, stream: str
) -> None:
    login = await hub_bus.login(kind)
    before = await hub_bus.consumer_names(stream)
    with pytest.raises(nats.errors.TimeoutError):  # a durable (legacy subject) ...
        await login.js.add_consumer(
            stream, ConsumerConfig(durable_name="intruder", ack_policy=AckPolicy.EXPLICIT)
        )
    with pytest.raises(nats.errors.TimeoutError):  # ... a named one ...
        await login.js.add_consumer(stream, ConsumerConfig(name="intruder", ack_policy=AckPolicy.EXPLICIT))
    with pytest.raises(nats.errors.TimeoutError):  # ... and a throwaway one
        await login.js.add_consumer(stream, ConsumerConfig(ack_policy=AckPolicy.NONE))
    await _refused(login, f"$JS.API.CONSUMER.DURABLE.CREATE.{stream}.intruder")
    await _refused(login, f"$JS.API.CONSUMER.CREATE.{stream}.intruder")
    assert await hub_bus.consumer_names(stream) == before


@pytest.mark.parametrize("kind", NON_OWNERS)
async def test_a_non_owner_login_is_refused_deleting_the_orchestrators_consumers(
    hub_bus: Bus, kind: str
) -> None:
    login = await hub_bus.login(kind)
    for stream, consumer in (
        (subjects.RESULTS_STREAM, subjects.RESULTS_CONSUMER),
        (subjects.EVENTS_STREAM, subjects.RUNNER_EVENTS_CONSUMER),
        (subjects.JOBS_STREAM, subjects.job_consumer("dev")),
    ):
        with pytest.raises(nats.errors.TimeoutError):
            await login.js.delete_consumer(stream, consumer)
        await _refused(login, f"$JS.API.CONSUMER.DELETE.{stream}.{consumer}")
        assert consumer in await hub_bus.consumer_names(stream)


@pytest.mark.parametrize("kind", ["board", "cli"])
async def test_throwaway_consumers_on_the_events_leave_the_other_services_durables_alone(
    hub_bus: Bus, kind: str
) -> None:
    """The board (and the operator's `nats` CLI) make and delete ephemeral consumers on WF_EVENTS, but
    cannot replace, delete, drain or ack for the orchestrator's or the sync bridge's durables there."""
    sync = await hub_bus.login("sync-bridge")
    await ensure_sync_consumer(sync.js)
    board = await hub_bus.login(kind)
    for durable in (subjects.RUNNER_EVENTS_CONSUMER, subjects.SYNC_BRIDGE_CONSUMER):
        with pytest.raises(nats.errors.TimeoutError):
            await board.js.delete_consumer(subjects.EVENTS_STREAM, durable)
        with pytest.raises(nats.errors.TimeoutError):
            await board.js.add_consumer(
                subjects.EVENTS_STREAM, ConsumerConfig(name=durable, filter_subject="wf.events.none")
            )
        with pytest.raises(nats.errors.TimeoutError):
            await board.nc.request(
                f"$JS.API.CONSUMER.MSG.NEXT.{subjects.EVENTS_STREAM}.{durable}", b"1", timeout=1
            )
        await _refused(board, f"$JS.API.CONSUMER.DELETE.{subjects.EVENTS_STREAM}.{durable}")
        await _refused(board, f"$JS.API.CONSUMER.MSG.NEXT.{subjects.EVENTS_STREAM}.{durable}")
        ack = f"$JS.ACK.{subjects.EVENTS_STREAM}.{durable}.1.1.1.0.0"
        await board.nc.publish(ack, b"+ACK")
        await _refused(board, ack)
        assert durable in await hub_bus.consumer_names(subjects.EVENTS_STREAM)
    info = await hub_bus.owner.consumer_info(subjects.EVENTS_STREAM, subjects.RUNNER_EVENTS_CONSUMER)
    assert info.config.filter_subjects == list(subjects.RUNNER_EVENT_SUBJECTS)


@pytest.mark.parametrize("kind", ["board", "cli"])
async def test_a_throwaway_consumer_cannot_take_a_durables_name(hub_bus: Bus, kind: str) -> None:
    """The name of a consumer is also in the body of its create request: the unnamed create subject
    (which takes the name from the body) is refused, and on a throwaway's own subject the server
    names the consumer after the subject, so neither replaces the sync bridge's durable (which
    would stop the tracker sync)."""
    sync = await hub_bus.login("sync-bridge")
    await ensure_sync_consumer(sync.js)
    reader = await hub_bus.login(kind)
    durable = subjects.SYNC_BRIDGE_CONSUMER
    body = ConsumerConfig(name=durable, ack_policy=AckPolicy.NONE, filter_subject="wf.events.none")
    request = json.dumps({"stream_name": subjects.EVENTS_STREAM, "config": body.as_dict()}).encode()
    unnamed = f"$JS.API.CONSUMER.CREATE.{subjects.EVENTS_STREAM}"
    with pytest.raises(nats.errors.TimeoutError):
        await reader.nc.request(unnamed, request, timeout=REFUSED_AFTER)
    await _refused(reader, unnamed)
    own = f"$JS.API.CONSUMER.CREATE.{subjects.EVENTS_STREAM}.{kind}x1"
    reply = json.loads((await reader.nc.request(own, request, timeout=5)).data)
    assert reply.get("name") == f"{kind}x1", reply  # the subject's name wins over the body's
    info = await hub_bus.owner.consumer_info(subjects.EVENTS_STREAM, durable)
    assert info.config.durable_name == durable
    assert info.config.filter_subject == "wf.events.>"


async def test_a_live_feed_comes_back_under_a_new_name_after_its_consumer_is_lost(hub_bus: Bus) -> None:
    """An ordered consumer that loses its consumer (the server dropped it) makes a new one; named
    throwaways get a fresh name then, so the feed goes on where it stopped."""
    board = await hub_bus.login("board")
    js = bus.NamedThrowawaysJetStream(board.nc, "board")
    await hub_bus.owner.publish(subjects.event_subject("demo", "T-001", "task.created"), b"1")
    live = await js.subscribe(
        "wf.events.>", stream=subjects.EVENTS_STREAM, ordered_consumer=True, idle_heartbeat=0.2
    )
    assert (await live.next_msg(timeout=5)).data == b"1"
    first = (await live.consumer_info()).name
    assert first.startswith("board")
    await hub_bus.owner.delete_consumer(subjects.EVENTS_STREAM, first)
    await hub_bus.owner.publish(subjects.event_subject("demo", "T-001", "task.moved"), b"2")
    assert (await live.next_msg(timeout=10)).data == b"2"
    names = await hub_bus.consumer_names(subjects.EVENTS_STREAM)
    assert first not in names
    assert any(name.startswith("board") for name in names), names
    await live.unsubscribe()
    assert not board.errors, board.errors


async def test_each_service_starts_and_works_with_its_own_login(hub_bus: Bus) -> None:
    """What each service does with JetStream: look at the topology at start (the call the runner, the
    board and the bridge make), make the bridge's own durable, pull and ack a job, read the pauses,
    beat in wf_runners, read events through throwaway consumers."""
    logins = {kind: await hub_bus.login(kind) for kind in NON_OWNERS}
    stages = hub_bus.workflow.pipeline.agent_stages
    for login in logins.values():
        await bus.ensure_topology(login.js, hub_bus.workflow.bus, stages, update_existing=False)
    await ensure_sync_consumer(logins["sync-bridge"].js)
    await ensure_sync_consumer(logins["sync-bridge"].js)  # again: the bridge's next start

    # The runner takes a job from its stage's queue and acks it; its heartbeat lands in wf_runners.
    runner = logins["runner"]
    await bus.publish(hub_bus.owner, subjects.job_subject("dev"), _Raw(text="job"))
    psub = await runner.js.pull_subscribe_bind(
        durable=subjects.job_consumer("dev"), stream=subjects.JOBS_STREAM
    )
    (msg,) = await psub.fetch(1, timeout=5)
    await msg.ack_sync()
    await psub.unsubscribe()
    await eventually(
        lambda: _pending(hub_bus.owner, subjects.JOBS_STREAM, "dev"),
        what="the runner's ack to empty the queue",
    )
    beats = await runner.js.key_value(subjects.RUNNERS_BUCKET)
    await beats.put("runner-1", b"{}")
    await (await hub_bus.owner.key_value(subjects.CONTROL_BUCKET)).put(subjects.PAUSED_KEY, b"1")
    for kind in ("runner", "board", "cli"):
        kv = await logins[kind].js.key_value(subjects.CONTROL_BUCKET)
        entry = await kv.get(subjects.PAUSED_KEY)
        assert entry.value == b"1"
        assert (
            await (await logins[kind].js.key_value(subjects.RUNNERS_BUCKET)).get("runner-1")
        ).value == b"{}"

    # The bridge pulls task events from its durable and acks them.
    sync = logins["sync-bridge"]
    await hub_bus.owner.publish(subjects.event_subject("demo", "T-001", "task.created"), b"{}")
    bsub = await sync.js.pull_subscribe_bind(
        durable=subjects.SYNC_BRIDGE_CONSUMER, stream=subjects.EVENTS_STREAM
    )
    (event,) = await bsub.fetch(1, timeout=5)
    await event.ack_sync()
    await bsub.unsubscribe()

    # The board (and the operator's CLI) read events through throwaway consumers (counted, then
    # deleted; a page pulled and acked; a live feed).
    for kind in ("board", "cli"):
        reader = logins[kind]
        reader.js = bus.NamedThrowawaysJetStream(reader.nc, kind)  # as the board does (and Go clients)
        counted = await reader.js.add_consumer(
            subjects.EVENTS_STREAM,
            ConsumerConfig(ack_policy=AckPolicy.NONE, deliver_policy=DeliverPolicy.ALL),
        )
        assert counted.num_pending == 1
        await reader.js.delete_consumer(subjects.EVENTS_STREAM, counted.name)
        page = await reader.js.pull_subscribe("wf.events.>", stream=subjects.EVENTS_STREAM)
        (line,) = await page.fetch(1, timeout=5)
        assert line.subject == event.subject
        await line.ack_sync()
        await page.unsubscribe()
        live = await reader.js.subscribe("wf.events.>", stream=subjects.EVENTS_STREAM, ordered_consumer=True)
        assert (await live.next_msg(timeout=5)).subject == event.subject
        await live.unsubscribe()
    for login in logins.values():
        assert not login.errors, login.errors


async def test_a_service_that_finds_nothing_declared_says_to_start_the_orchestrator(empty_bus: Bus) -> None:
    runner = await empty_bus.login("runner")
    with pytest.raises(BusError) as err:
        await bus.ensure_topology(
            runner.js, empty_bus.workflow.bus, empty_bus.workflow.pipeline.agent_stages, update_existing=False
        )
    assert "may not make it" in str(err.value)
    assert "start the orchestrator" in str(err.value)
    assert await empty_bus.stream_names() == []


class _Raw(BaseModel):
    text: str


async def _pending(js: JetStreamContext, stream: str, consumer: str) -> bool:
    with contextlib.suppress(nats.errors.Error):
        info = await js.consumer_info(stream, consumer)
        return not info.num_pending and not info.num_ack_pending
    return False
