"""Nothing gets stuck, nothing is silent: a Result that can never be applied is terminated with its
reason, what runners report while the orchestrator is down is still recorded, a job that vanished
fails its task, and a job waiting for the model server says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from wf_common import subjects
from wf_common.events import ExecutionStarted, ExecutionWaiting

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually
from tests.orchestrator.test_reliability import dev_job_of_a_child, results_left


async def test_a_result_that_can_never_be_applied_is_terminated_and_fails_its_task(
    make_hub: Any, tmp_path: Path
) -> None:
    hub: Hub = await make_hub(config(orchestrator={"result_apply_tries": 3}))
    await hub.project("demo", tmp_path / "demo")
    dev = await dev_job_of_a_child(hub)
    # Valid JSON and a valid Result, but PostgreSQL refuses NUL characters in text: every apply fails.
    await hub.finish(dev, summary="done\x00")
    task = await hub.wait_state("T-002", "dev", "failed", within=30)
    assert task["status_reason"].startswith("its result could not be applied after 3 tries: ")
    [rejected] = await eventually(lambda: _async(hub.events_of("result.rejected", "T-002")))
    assert (rejected.execution_id, rejected.stage, rejected.deliveries) == (dev.job_id, "dev", 3)
    assert rejected.reason == task["status_reason"]
    # Terminated, not redelivered forever.
    await eventually(lambda: _is_zero(hub), what="the result to leave the results consumer")
    [ex] = await hub.executions("T-002")
    assert (ex["status"], ex["result_status"]) == ("failed", "error")
    await hub.cmd("retry_task", project="demo", task_key="T-002")
    again = await hub.next_job("dev")
    assert again.attempt == 2


async def test_a_max_deliveries_advisory_sent_while_the_orchestrator_is_down_is_handled_after(
    hub: Hub,
) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    assert hub.js is not None
    psub = await hub.js.pull_subscribe_bind(durable="pm", stream=subjects.JOBS_STREAM)
    [msg] = await psub.fetch(1, timeout=5)
    await hub.stop_orchestrator()
    deliveries = 0
    while True:  # runners crash on every delivery while no orchestrator is listening
        deliveries += 1
        await msg.nak()
        try:
            [msg] = await psub.fetch(1, timeout=1)
        except TimeoutError:
            break
    assert deliveries == 3
    info = await hub.js.stream_info(subjects.ADVISORIES_STREAM)
    assert info.state.messages == 1, "the advisory was stored while nobody listened"
    await hub.start()
    task = await hub.wait_state("T-001", "pm", "failed")
    assert task["status_reason"].startswith("the job was delivered 3 times without finishing")

    async def advisory_consumed() -> bool:
        assert hub.js is not None
        return (await hub.js.stream_info(subjects.ADVISORIES_STREAM)).state.messages == 0

    await eventually(advisory_consumed, what="the advisory to be acked")


async def test_a_start_reported_while_the_orchestrator_is_down_is_recorded_after(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    job = await hub.next_job("pm")
    await hub.stop_orchestrator()
    assert hub.js is not None
    started = ExecutionStarted(
        project="demo", task_key="T-001", execution_id=job.job_id, stage="pm", runner_id="runner-7"
    )
    await hub.js.publish(started.subject(), started.model_dump_json().encode())
    await hub.start()

    async def recorded() -> dict[str, Any] | None:
        [ex] = await hub.executions("T-001")
        return ex if ex["runner_id"] == "runner-7" else None

    ex = await eventually(recorded, what="the start to be recorded")
    assert ex["status"] == "running"
    assert ex["started_at"] is not None


async def test_a_job_that_vanished_before_any_runner_started_it_fails_its_task(
    make_hub: Any, tmp_path: Path
) -> None:
    hub: Hub = await make_hub(timeout_margin_seconds=0)
    await hub.project("demo", tmp_path / "demo")
    await hub.cmd("submit_idea", project="demo", text="An idea")
    await hub.next_job("pm")  # taken off the queue and acked, and then nothing: no start, no result
    task = await hub.wait_state("T-001", "pm", "failed", within=20)
    assert task["status_reason"].startswith("the pm job was never started and is no longer in the queue")
    await hub.cmd("retry_task", project="demo", task_key="T-001")
    assert (await hub.next_job("pm")).attempt == 2


async def test_a_job_waiting_for_the_model_server_says_so_until_it_starts_again(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    job = await hub.next_job("pm")
    assert hub.js is not None
    waiting = ExecutionWaiting(
        project="demo",
        task_key="T-001",
        execution_id=job.job_id,
        reason="could not reach the Ollama server at http://127.0.0.1:9: connection refused",
        url="http://127.0.0.1:9",
        retry=3,
        retry_in_seconds=30,
    )
    await hub.js.publish(waiting.subject(), waiting.model_dump_json().encode())

    async def reason_is(expected: str | None) -> bool:
        t = await hub.task("T-001")
        return bool(t["state"] == "running" and t["status_reason"] == expected)

    await eventually(
        lambda: reason_is("waiting for the model server at http://127.0.0.1:9, retry 3 in 30 s"),
        what="the waiting reason on the task",
    )
    started = ExecutionStarted(
        project="demo", task_key="T-001", execution_id=job.job_id, stage="pm", runner_id="r1", delivery=4
    )
    await hub.js.publish(started.subject(), started.model_dump_json().encode())
    await eventually(lambda: reason_is(None), what="the reason to clear once the job runs again")


async def _async(value: Any) -> Any:
    return value


async def _is_zero(hub: Hub) -> bool:
    return await results_left(hub) == 0
