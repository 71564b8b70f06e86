"""The runner end to end over a real NATS server: jobs in, results and events out, heartbeats,
retries while the model is down, poison messages, and handing jobs back on stop."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import nats
import pytest
import yaml
from nats.aio.client import Client as NATS
from nats.aio.subscription import Subscription
from nats.js.errors import KeyNotFoundError
from nats.js.kv import KeyValue
from wf_agent_runner.runner import Runner
from wf_agent_runner.settings import RunnerSettings
from wf_cli.embedded import NatsServer
from wf_common import bus, subjects
from wf_common.events import AgentOutput, ExecutionStarted, parse_event
from wf_common.jobs import Job, Result, RunnerHeartbeat
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import JobFactory
from tests.runner.helpers import MODEL, log_subjects

SUMMARY = "Add price parser\n\nParses '$1,234.50'."


def write_config(path: Path, host: str, **sections: Any) -> Path:
    data: dict[str, Any] = {
        "llm_backend": {"host": host, "model": MODEL, "timeout_seconds": 20},
        "bus": {"ack_wait_seconds": 6, "max_deliver": 3},
        "runner": {"retry_delays": [0.2], "heartbeat_seconds": 5},
        "sandbox": {"backend": "none"},  # the runner's bus behaviour here; tests/sandbox runs the sandboxes
    }
    for name, values in sections.items():
        data[name] = {**data.get(name, {}), **values}
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


class Bus:
    """The test's own connection: publishes jobs, watches results and events."""

    def __init__(self, nc: NATS, results: Subscription, events: Subscription) -> None:
        self.nc = nc
        self.js = nc.jetstream()
        self.results = results
        self.events = events
        self.seen: list[Any] = []

    async def result(self, wait: float = 20) -> Result:
        msg = await self.results.next_msg(timeout=wait)
        return Result.model_validate_json(msg.data)

    async def event(self, event_type: type[Any], wait: float = 20, **match: Any) -> Any:
        async with asyncio.timeout(wait):
            while True:
                ev = parse_event((await self.events.next_msg(timeout=wait)).data)
                self.seen.append(ev)
                if isinstance(ev, event_type) and all(getattr(ev, k) == v for k, v in match.items()):
                    return ev

    async def drain_events(self) -> list[Any]:
        with contextlib.suppress(nats.errors.TimeoutError, TimeoutError):
            while True:
                self.seen.append(parse_event((await self.events.next_msg(timeout=0.3)).data))
        return self.seen

    async def consumer_idle(self, stage: str) -> None:
        """Wait until the stage's consumer has no job pending or unacked."""
        async with asyncio.timeout(10):
            while True:
                info = await self.js.consumer_info(subjects.JOBS_STREAM, subjects.job_consumer(stage))
                if info.num_pending == 0 and info.num_ack_pending == 0:
                    return
                await asyncio.sleep(0.05)


@pytest.fixture
async def client(nats_server: NatsServer) -> AsyncIterator[Bus]:
    nc = await nats.connect(nats_server.url)
    results = await nc.subscribe(f"{subjects.RESULTS_PREFIX}.>")
    events = await nc.subscribe(f"{subjects.EVENTS_PREFIX}.>")
    yield Bus(nc, results, events)
    await nc.close()


@contextlib.asynccontextmanager
async def running(settings: RunnerSettings, url: str) -> AsyncIterator[Runner]:
    nc = await bus.connect(url, name=settings.runner_id)
    runner = Runner(settings, nc)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        yield runner
    finally:
        stop.set()
        await asyncio.wait_for(task, 20)
        await nc.close()


async def busy(kv: KeyValue, runner_id: str) -> list[str]:
    entry = await kv.get(runner_id)
    return RunnerHeartbeat.model_validate_json(entry.value or b"").busy


def settings_for(config: Path, url: str, runner_id: str = "runner-a", **kw: Any) -> RunnerSettings:
    return RunnerSettings(config=str(config), nats_url=url, runner_id=runner_id, stages=["dev"], **kw)


async def publish_job(client: Bus, settings: RunnerSettings, job: Job) -> None:
    await bus.ensure_topology(client.js, settings.workflow.bus, ["dev"])
    await bus.publish(client.js, subjects.job_subject(job.stage), job, msg_id=job.idempotency_key)


async def test_a_dev_job_end_to_end(
    nats_server: NatsServer,
    client: Bus,
    fake: ScriptedOllama,
    make_job: JobFactory,
    workspace: Path,
    tmp_path: Path,
) -> None:
    settings = settings_for(write_config(tmp_path / "config.yaml", fake.url), nats_server.url)
    fake.queue(
        Reply(
            content="I will write the parser now. " * 20,
            tool_calls=[("write_file", {"path": "app/money.py", "content": "CENTS = 100\n"})],
        ),
        Reply.tool("finish", status="pass", summary=SUMMARY),
    )
    job = make_job("dev", job_id=41)
    await bus.ensure_topology(client.js, settings.workflow.bus, ["dev"])
    # A poison message first: it is terminated and does not block the real job behind it.
    await client.js.publish(subjects.job_subject("dev"), b'{"not": "a job"}')
    await publish_job(client, settings, job)
    async with running(settings, nats_server.url):
        started = await client.event(ExecutionStarted)
        assert (started.execution_id, started.runner_id, started.delivery) == (41, "runner-a", 1)
        assert started.subject() == "wf.events.listsnap.T-002.execution.started"
        result = await client.result()
        assert result.status is Verdict.PASS
        assert result.job_id == 41
        assert result.runner_id == "runner-a"
        assert result.files_changed == ["app/money.py"]
        assert len(result.commits) == 1
        assert log_subjects(workspace)[0] == "T-002: Add price parser"
        await client.consumer_idle("dev")
        kv = await client.js.key_value(subjects.RUNNERS_BUCKET)
        beat = RunnerHeartbeat.model_validate_json((await kv.get("runner-a")).value or b"")
        assert beat.stages == ["dev"]
        assert beat.runner_id == "runner-a"
    with pytest.raises(KeyNotFoundError):  # a clean exit removes the heartbeat
        await kv.get("runner-a")

    outputs = [e for e in await client.drain_events() if isinstance(e, AgentOutput)]
    assert all(e.execution_id == 41 and e.stage == "dev" for e in outputs)
    tokens = [e.text for e in outputs if e.kind == "token"]
    assert "".join(tokens) == "I will write the parser now. " * 20
    assert len(tokens) < 20  # 120 streamed pieces, coalesced
    kinds = [e.kind for e in outputs]
    assert kinds.index("token") < kinds.index("tool_call") < kinds.index("tool_result")
    assert any(e.kind == "tool_call" and e.text.startswith("write_file(") for e in outputs)
    assert [e.seq for e in outputs] == sorted(e.seq for e in outputs)
    assert sum(isinstance(e, ExecutionStarted) for e in client.seen) == 1  # not for the poison message


async def test_unreachable_model_naks_then_reports_the_url_on_the_last_delivery(
    nats_server: NatsServer, client: Bus, make_job: JobFactory, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = settings_for(write_config(tmp_path / "c.yaml", dead, bus={"max_deliver": 2}), nats_server.url)
    job = make_job("dev")
    await publish_job(client, settings, job)
    async with running(settings, nats_server.url):
        await client.event(ExecutionStarted, delivery=1)
        retry = await client.event(AgentOutput, kind="error")
        assert "trying again in 0.2s" in retry.text
        assert dead in retry.text
        await client.event(ExecutionStarted, delivery=2)
        result = await client.result()
        await client.consumer_idle("dev")  # terminated: not redelivered again
    assert result.status is Verdict.ERROR
    assert result.error is not None
    assert result.error.kind == "llm_unavailable"
    assert result.error.retryable
    assert dead in result.error.message
    with pytest.raises((nats.errors.TimeoutError, TimeoutError)):
        await client.result(wait=0.5)  # exactly one result


async def test_a_stopping_runner_hands_its_job_to_another(
    nats_server: NatsServer, client: Bus, fake: ScriptedOllama, make_job: JobFactory, tmp_path: Path
) -> None:
    calls = 0

    def responder(body: dict[str, Any]) -> Reply:
        nonlocal calls
        calls += 1
        if calls == 1:  # the first runner's model call hangs until that runner gives up
            return Reply(tool_calls=[("list_files", {"path": "."})], delay=30)
        if body["messages"][-1]["role"] != "tool":  # DEV must change a file to pass
            return Reply.tool("write_file", path="app/handed.py", content="HANDED = True\n")
        return Reply.tool("finish", status="pass", summary=SUMMARY)

    fake.set_responder(responder)
    config = write_config(tmp_path / "config.yaml", fake.url)
    job = make_job("dev")
    first = settings_for(config, nats_server.url, "runner-a", drain_seconds=0.2)
    await publish_job(client, first, job)
    async with running(first, nats_server.url):
        await client.event(ExecutionStarted, runner_id="runner-a")
        kv = await client.js.key_value(subjects.RUNNERS_BUCKET)
        async with asyncio.timeout(5):  # the heartbeat shows the job at once, not at the next beat
            while True:
                if job.idempotency_key in await busy(kv, "runner-a"):
                    break
                await asyncio.sleep(0.05)
    # runner-a stopped mid-job and nak'ed it; runner-b gets it at once.
    async with running(settings_for(config, nats_server.url, "runner-b"), nats_server.url):
        started = await client.event(ExecutionStarted, runner_id="runner-b")
        assert started.delivery == 2
        result = await client.result()
    assert result.status is Verdict.PASS
    assert result.runner_id == "runner-b"
