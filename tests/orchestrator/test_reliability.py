"""Nothing lost, nothing twice: duplicate results, jobs that never finish, crashes between commit and
publish, and failures a human can retry."""

from __future__ import annotations

from collections.abc import Awaitable
from pathlib import Path
from typing import Any

from sqlalchemy import func, insert, select, text
from wf_common import subjects
from wf_common.db.tables import outbox
from wf_common.events import ExecutionStarted, FeedbackAdded
from wf_common.jobs import ErrorInfo, Job

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually


async def dev_job_of_a_child(hub: Hub) -> Any:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    await hub.breakdown(
        await hub.next_job("pm"),
        {"title": "Child", "description": "d", "acceptance_criteria": ["ok"], "priority": 5},
    )
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001")
    return await hub.next_job("dev")


async def results_left(hub: Hub) -> int:
    assert hub.js is not None
    info = await hub.js.consumer_info(subjects.RESULTS_STREAM, subjects.RESULTS_CONSUMER)
    return int(info.num_pending or 0) + int(info.num_ack_pending or 0)


async def test_a_result_delivered_twice_is_applied_once(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    result = await hub.finish(dev, summary="done once")
    assert hub.js is not None
    # The same result again under another message id, as after a runner retry past the dedupe window.
    await hub.js.publish(
        subjects.result_subject("dev"), result.model_dump_json().encode(), headers={"Nats-Msg-Id": "again"}
    )
    await hub.next_job("qa")
    await eventually(lambda: _zero(results_left(hub)), what="both results to be acked")
    await hub.no_job("qa", wait=0.3)
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa")]
    ex = (await hub.executions("T-002"))[0]
    assert (ex["status"], ex["result_summary"]) == ("completed", "done once")
    assert len([e for e in hub.events_of("execution.finished") if e.task_key == "T-002"]) == 1


async def _zero(value: Awaitable[int]) -> bool:
    return await value == 0


async def test_an_error_fails_the_task_with_its_reason_and_retry_runs_it_again(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    why = "could not reach the Ollama server at http://localhost:11434: start it with `ollama serve`"
    await hub.finish(dev, "error", error=ErrorInfo(kind="llm_unavailable", message=why, retryable=True))
    failed = await hub.wait_state("T-002", "dev", "failed")
    assert failed["status_reason"] == why
    await hub.no_job("dev", wait=0.3)
    await hub.cmd("retry_task", project="demo", task_key="T-002")
    again = await hub.next_job("dev")
    assert (again.task.key, again.attempt, again.idempotency_key) == ("T-002", 2, "demo/T-002/dev/2")
    assert again.handoff == dev.handoff, "a retry gets the same handoff as the first attempt"
    assert [e["status"] for e in await hub.executions("T-002")] == ["failed", "pending"]


async def test_the_rework_cap_asks_a_human_and_retry_starts_the_count_again(
    make_hub: Any, tmp_path: Path
) -> None:
    hub: Hub = await make_hub(config(pipeline={"rework_limit": 1}))
    await hub.project("demo", tmp_path / "demo")
    dev = await dev_job_of_a_child(hub)
    for _ in range(2):
        await hub.finish(dev)
        await hub.fail_tests(await hub.next_job("qa"), ["t::x"])
        if _ == 0:
            dev = await hub.next_job("dev")
    task = await hub.wait_state("T-002", "qa", "needs_human")
    assert task["status_reason"].startswith("rework limit (1) reached")
    assert len(await hub.bugs("T-002")) == 2
    await hub.cmd("retry_task", project="demo", task_key="T-002")
    assert (await hub.task("T-002"))["rework_count"] == 0
    assert (await hub.next_job("qa")).task.key == "T-002"


async def test_a_job_out_of_deliveries_fails_its_task_and_leaves_the_stream_empty(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    assert hub.js is not None
    psub = await hub.js.pull_subscribe_bind(durable="pm", stream=subjects.JOBS_STREAM)
    deliveries = 0
    while True:  # runners that crash on each delivery (max_deliver is 3 in the test config)
        try:
            [msg] = await psub.fetch(1, timeout=1)
        except TimeoutError:
            break  # JetStream gave up; a pull is what makes it notice and advise
        deliveries += 1
        await msg.nak()
    assert deliveries == 3
    task = await hub.wait_state("T-001", "pm", "failed")
    assert task["status_reason"] == (
        "the job was delivered 3 times without finishing (runner crashed or timed out each time)"
    )
    await eventually(lambda: _stream_empty(hub), what="the job to be deleted from WF_JOBS")
    assert [e["status"] for e in await hub.executions("T-001")] == ["failed"]
    await hub.cmd("retry_task", project="demo", task_key="T-001")
    assert (await hub.next_job("pm")).attempt == 2


async def _stream_empty(hub: Hub) -> bool:
    assert hub.js is not None
    return (await hub.js.stream_info(subjects.JOBS_STREAM)).state.messages == 0


async def test_a_job_running_past_its_timeout_fails_the_task(make_hub: Any, tmp_path: Path) -> None:
    wf = config(pipeline={"stages": [{"name": "pm", "agent": "pm", "gate": True, "timeout_seconds": 1}]})
    hub: Hub = await make_hub(wf, timeout_margin_seconds=0.2)
    await hub.project("demo", tmp_path / "demo")
    await hub.cmd("submit_idea", project="demo", text="An idea")
    job = await hub.next_job("pm")
    assert hub.js is not None
    started = ExecutionStarted(
        project="demo", task_key="T-001", execution_id=job.job_id, stage="pm", runner_id="r1"
    )
    await hub.js.publish(started.subject(), started.model_dump_json().encode())
    task = await hub.wait_state("T-001", "pm", "failed", within=10)
    assert "longer than its timeout (1 s)" in task["status_reason"]
    [ex] = await hub.executions("T-001")
    assert (ex["status"], ex["runner_id"]) == ("failed", "r1")
    await hub.finish(job)  # the runner reports after all: too late, nothing changes
    await eventually(lambda: _zero(results_left(hub)), what="the late result to be consumed")
    assert await hub.state("T-001") == ("pm", "failed")


async def _two_pm_jobs_started_while_the_orchestrator_was_down(
    hub: Hub, tmp_path: Path, runners: tuple[str, str]
) -> list[Job]:
    """Two ideas (two projects) give two PM jobs; with the orchestrator down, each is reported started
    by its runner; then the orchestrator starts and reads both events in one batch."""
    await hub.project("other", tmp_path / "other")
    jobs = []
    for slug in ("demo", "other"):
        await hub.cmd("submit_idea", project=slug, text="An idea")
        jobs.append(await hub.next_job("pm"))
    await hub.stop_orchestrator()
    assert hub.js is not None
    for job, runner in zip(jobs, runners, strict=True):
        started = ExecutionStarted(
            project=job.project.slug,
            task_key=job.task.key,
            execution_id=job.job_id,
            stage="pm",
            runner_id=runner,
        )
        await hub.js.publish(started.subject(), started.model_dump_json().encode())
    await hub.start()
    return jobs


async def test_jobs_started_while_the_orchestrator_was_down_are_all_recorded_in_one_batch(
    hub: Hub, tmp_path: Path
) -> None:
    # Two runners start two jobs while the orchestrator is down: at start it reads both events in
    # one batch. That batch once stopped the orchestrator (an `IN` list cannot go with executemany).
    jobs = await _two_pm_jobs_started_while_the_orchestrator_was_down(hub, tmp_path, ("r1", "r2"))

    async def both_running() -> bool:
        async with hub.db.connect() as conn:
            rows = await conn.execute(
                text("SELECT runner_id FROM executions WHERE status = 'running' ORDER BY runner_id")
            )
            return [r[0] for r in rows] == ["r1", "r2"]

    await eventually(both_running, what="both executions to be marked running by their runners")
    await hub.breakdown(
        jobs[0], {"title": "Child", "description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    )
    await hub.wait_state("T-001", "pm", "awaiting_approval")  # the orchestrator still applies results


async def test_a_runner_event_that_cannot_be_recorded_is_terminated_and_the_rest_of_its_batch_recorded(
    hub: Hub, tmp_path: Path
) -> None:
    # A runner id with a NUL byte: PostgreSQL refuses it every time. In one batch with a good event, it
    # once kept both unrecorded, redelivered until the consumer's max deliveries.
    jobs = await _two_pm_jobs_started_while_the_orchestrator_was_down(hub, tmp_path, ("r1", "bad\x00runner"))

    async def runners() -> list[tuple[int, str | None]]:
        async with hub.db.connect() as conn:
            rows = await conn.execute(text("SELECT id, runner_id FROM executions WHERE status = 'running'"))
            return [(r[0], r[1]) for r in rows]

    async def settled() -> bool:
        assert hub.js is not None
        info = await hub.js.consumer_info(subjects.EVENTS_STREAM, subjects.RUNNER_EVENTS_CONSUMER)
        return bool(info.num_pending == 0 and info.num_ack_pending == 0)

    await eventually(settled, what="both events settled: one recorded, one terminated")
    assert await runners() == [(jobs[0].job_id, "r1")], "the good event is recorded, the bad one is not"
    await hub.breakdown(
        jobs[0], {"title": "Child", "description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    )
    await hub.wait_state("T-001", "pm", "awaiting_approval")  # the orchestrator carries on


async def test_messages_left_in_the_outbox_by_a_crash_are_published_at_start(hub: Hub) -> None:
    await hub.stop_orchestrator()
    event = FeedbackAdded(project="demo", task_key="T-001", text="written before the crash")
    async with hub.db.begin() as conn:
        await conn.execute(
            insert(outbox).values(
                subject=event.subject(), payload=event.model_dump_json().encode(), msg_id=event.id
            )
        )
    await hub.start()

    async def published() -> bool:
        return any(e.id == event.id for e in hub.events) or await _in_stream(hub, event.subject())

    await eventually(published, what="the leftover event on WF_EVENTS")

    async def outbox_empty() -> bool:
        async with hub.db.connect() as conn:
            return await conn.scalar(select(func.count()).select_from(outbox)) == 0

    await eventually(outbox_empty, what="the outbox to be emptied")


async def _in_stream(hub: Hub, subject: str) -> bool:
    assert hub.js is not None
    try:
        await hub.js.get_last_msg(subjects.EVENTS_STREAM, subject)
        return True  # noqa: TRY300 - kept in the try on purpose
    except Exception:  # noqa: BLE001 - a boundary: any failure is reported or logged, never crashes the loop
        return False


async def test_a_blocked_task_whose_blockers_are_done_is_released_by_the_sweep(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    step = {"description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    await hub.breakdown(
        await hub.next_job("pm"), {"title": "First", **step}, {"title": "Second", **step, "depends_on": [0]}
    )
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001")
    await hub.next_job("dev")
    # As if a race had lost the moment T-002 finished: T-003 still blocked although T-002 is done.
    async with hub.db.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET state = 'done', current_stage = 'done' WHERE task_key = 'T-002'")
        )
    assert (await hub.next_job("dev", within=5)).task.key == "T-003"


async def test_an_idea_whose_tasks_a_crash_left_all_done_is_finished_by_the_sweep(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="An idea")
    step = {"description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    await hub.breakdown(await hub.next_job("pm"), {"title": "Only", **step})
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001")
    await hub.next_job("dev")
    # As if the orchestrator had died between T-002's commit to done and the idea's own transaction.
    async with hub.db.begin() as conn:
        await conn.execute(
            text("UPDATE tasks SET state = 'done', current_stage = 'done' WHERE task_key = 'T-002'")
        )
    await hub.wait_state("T-001", "done", "done")
