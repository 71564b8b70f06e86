"""The runner's intake: a pull outstanding on every stage it serves (an idle runner serving several
stages takes a job of any of them, never more at once than its slots), and a job waiting for an
unreachable model server says so with `execution.waiting`."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

from nats.aio.msg import Msg
from wf_cli.embedded import NatsServer
from wf_common import bus, subjects
from wf_common.events import ExecutionStarted, ExecutionWaiting
from wf_common.jobs import Result
from wf_common.states import Verdict

from tests.fakes.ollama import Reply, ScriptedOllama
from tests.runner.conftest import JobFactory
from tests.runner.test_runner_nats import SUMMARY, Bus, client, running, settings_for, write_config

__all__ = ["client"]  # fixture

STAGES = ["dev", "qa", "docs"]


async def test_an_idle_runner_takes_jobs_of_every_stage_it_serves_one_slot_at_a_time(
    nats_server: NatsServer, client: Bus, fake: ScriptedOllama, make_job: JobFactory, tmp_path: Path
) -> None:
    written = 0

    def write_then_finish(body: dict[str, Any]) -> Reply:
        # DEV must change a file to pass: each job writes its own, then finishes.
        nonlocal written
        if body["messages"][-1]["role"] == "tool":
            return Reply.tool("finish", status="pass", summary=SUMMARY)
        written += 1
        return Reply.tool("write_file", path=f"app/part{written}.py", content=f"PART = {written}\n")

    fake.set_responder(write_then_finish)
    config = write_config(tmp_path / "config.yaml", fake.url)
    settings = settings_for(config, nats_server.url)
    settings.stages = STAGES
    order: list[tuple[str, int]] = []

    async def record(msg: Msg) -> None:
        _record(order, msg.subject, msg.data)

    seen = await client.nc.subscribe("wf.>", cb=record)
    async with running(settings, nats_server.url):
        await bus.ensure_topology(client.js, settings.workflow.bus, STAGES)
        # The runner is idle with pulls outstanding; the jobs arrive after it started, last stage first.
        jobs = [make_job("dev", stage=stage, job_id=100 + i) for i, stage in enumerate(reversed(STAGES))]
        for job in jobs:
            await bus.publish(client.js, subjects.job_subject(job.stage), job, msg_id=job.idempotency_key)
        results = [await client.result() for _ in jobs]
        for stage in STAGES:
            await client.consumer_idle(stage)
    await seen.unsubscribe()
    assert sorted(r.job_id for r in results) == [100, 101, 102]
    assert all(r.status is Verdict.PASS for r in results)
    # One slot (concurrency 1): each job started only after the previous one's result.
    kinds = [kind for kind, _ in order]
    assert kinds == ["started", "result"] * 3


def _record(order: list[tuple[str, int]], subject: str, data: bytes) -> None:
    if subject.endswith(".execution.started"):
        order.append(("started", ExecutionStarted.model_validate_json(data).execution_id))
    elif subject.startswith(subjects.RESULTS_PREFIX + "."):
        order.append(("result", Result.model_validate_json(data).job_id))


async def test_a_job_waiting_for_the_model_server_announces_the_url_and_the_retry(
    nats_server: NatsServer, client: Bus, make_job: JobFactory, tmp_path: Path
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}"
    settings = settings_for(write_config(tmp_path / "c.yaml", dead, bus={"max_deliver": 2}), nats_server.url)
    job = make_job("dev", job_id=55)
    await bus.ensure_topology(client.js, settings.workflow.bus, ["dev"])
    await bus.publish(client.js, subjects.job_subject("dev"), job, msg_id=job.idempotency_key)
    async with running(settings, nats_server.url):
        waiting = await client.event(ExecutionWaiting)
        await client.result()  # the last delivery reports the error
    assert (waiting.execution_id, waiting.url, waiting.retry, waiting.retry_in_seconds) == (55, dead, 1, 0.2)
    assert dead in waiting.reason
    assert waiting.describe() == f"waiting for the model server at {dead}, retry 1 in 0.2 s"
    assert waiting.subject() == "wf.events.listsnap.T-002.execution.waiting"
