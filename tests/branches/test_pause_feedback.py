"""Pausing a task, a project, or everything freezes running work before its next model turn and keeps
its delivery alive; resuming continues it. Feedback typed while an agent works reaches its next turn."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import nats
from wf_common import subjects
from wf_common.events import parse_event

from tests.branches.conftest import Rig, write_and_finish
from tests.orchestrator.hub import eventually


async def _execution_status(rig: Rig, key: str) -> str:
    return str((await rig.hub.executions(key))[-1]["status"])


async def test_pausing_a_task_mid_run_freezes_it_until_resumed(make_rig: Callable[..., Any]) -> None:
    rig: Rig = await make_rig()
    hub = rig.hub
    rig.model.script("Add alpha", write_and_finish("alpha.py", "ALPHA = 1\n", "alpha"))
    thinking = rig.model.holds["Add alpha"] = threading.Event()
    async with rig.runner():
        await rig.to_dev("Add alpha")
        await asyncio.to_thread(rig.model.arrived["Add alpha"].wait, 20)  # the first turn is under way

        reply = await hub.cmd("pause", project="demo", task_key="T-002")
        assert reply["tasks"] == [{"project": "demo", "key": "T-002"}]
        thinking.set()  # the model answers the turn that was running: write a file

        async def paused() -> bool:
            return await _execution_status(rig, "T-002") == "paused"

        await eventually(paused, what="the execution to be marked paused", within=10)
        [frozen] = hub.events_of("execution.paused", "T-002")
        assert frozen.scope == "task"
        # Paused (since its runner's `execution.paused`) for twice ack_wait (2 s), the job is still
        # pending, delivered once: the runner's heartbeats keep it; it is neither redelivered nor
        # given another model turn. A redelivery fails the wait at once.
        outlive = timedelta(seconds=rig.workflow.bus.ack_wait_seconds * 2)

        async def delivery_outlived_ack_wait() -> bool:
            info = await hub.js.consumer_info(subjects.JOBS_STREAM, subjects.job_consumer("dev"))  # type: ignore[union-attr]
            assert info.num_redelivered == 0, "the paused job was redelivered"
            assert info.delivered.consumer_seq == 1, "the paused job was delivered again"
            return bool(info.num_ack_pending == 1 and datetime.now(UTC) - frozen.at > outlive)

        await eventually(delivery_outlived_ack_wait, what="the job to stay paused past ack_wait", within=30)
        assert len(rig.model.requests_of("Add alpha")) == 1
        assert len(hub.events_of("execution.started", "T-002")) == 1
        assert await hub.state("T-002") == ("dev", "running")

        await hub.cmd("resume", project="demo", task_key="T-002")
        await hub.wait_state("T-002", "deploy", "awaiting_approval", within=20)
    [resumed] = hub.events_of("execution.resumed", "T-002")
    assert resumed.paused_seconds >= rig.workflow.bus.ack_wait_seconds
    assert len(rig.model.requests_of("Add alpha")) == 2
    assert (await hub.executions("T-002"))[-1]["status"] == "completed"


async def test_a_paused_project_gets_no_new_jobs_until_resumed(make_rig: Callable[..., Any]) -> None:
    rig: Rig = await make_rig()
    hub = rig.hub
    await hub.cmd("pause", project="demo")
    await hub.cmd("submit_idea", project="demo", text="Build the thing")
    await hub.no_job("pm", wait=1.0)  # the PM's job waits too
    await hub.cmd("resume", project="demo")
    await rig.pm_breakdown("Add alpha")
    await hub.cmd("pause", project="demo")
    await hub.cmd("approve", project="demo", task_key="T-001")
    await hub.no_job("dev", wait=1.0)
    assert await hub.state("T-002") == ("dev", "queued")
    changes = hub.events_of("control.changed")
    assert [(c.scope, c.project, c.paused) for c in changes] == [
        ("project", "demo", True),
        ("project", "demo", False),
        ("project", "demo", True),
    ]

    await hub.cmd("resume", project="demo")
    job = await hub.next_job("dev")
    assert job.task.key == "T-002"
    assert job.worktree is not None
    assert job.worktree.endswith("/.workflow/worktrees/T-002")

    err = await hub.reply("pause", project="nope")
    assert err.error is not None
    assert err.error.code == "not_found"
    err = await hub.reply("pause", project="demo", task_key="T-099")
    assert err.error is not None
    assert err.error.code == "not_found"


async def test_feedback_typed_while_the_agent_works_reaches_its_next_turn(
    make_rig: Callable[..., Any],
) -> None:
    rig: Rig = await make_rig()
    hub = rig.hub
    rig.model.script("Add alpha", write_and_finish("alpha.py", "ALPHA = 1\n", "alpha"))
    thinking = rig.model.holds["Add alpha"] = threading.Event()
    listener = await nats.connect(rig.nats_url)
    feedback = await listener.subscribe(f"{subjects.EVENTS_PREFIX}.demo.T-002.feedback.added")
    try:
        async with rig.runner():
            await rig.to_dev("Add alpha")
            await asyncio.to_thread(rig.model.arrived["Add alpha"].wait, 20)
            await hub.cmd(
                "add_feedback", project="demo", task_key="T-002", text="name it ALPHA_VALUE", actor="ann"
            )
            parse_event((await feedback.next_msg(timeout=5)).data)  # it is on the bus
            thinking.set()
            await hub.wait_state("T-002", "deploy", "awaiting_approval", within=20)
    finally:
        await listener.close()
    first, second = rig.model.requests_of("Add alpha")
    assert "name it ALPHA_VALUE" not in str(first["messages"])
    last_user = [m for m in second["messages"] if m["role"] == "user"][-1]
    assert "name it ALPHA_VALUE" in last_user["content"]
    assert "ann" in last_user["content"]
    # And it is kept for later executions of the task, as before.
    assert [f["text"] for f in (await _feedback(rig, "T-002"))] == ["name it ALPHA_VALUE"]


async def _feedback(rig: Rig, key: str) -> list[dict[str, Any]]:
    from sqlalchemy import select
    from wf_common.db.tables import feedback

    t = await rig.hub.task(key)
    async with rig.hub.db.connect() as conn:
        rows = await conn.execute(select(feedback).where(feedback.c.task_id == t["id"]))
        return [dict(r) for r in rows.mappings()]
