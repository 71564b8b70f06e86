"""The pipeline end to end against real NATS and PostgreSQL, with the test playing the agent runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub

ADD = {
    "title": "Add function add",
    "description": "add(a, b)",
    "acceptance_criteria": ["add(2, 3) == 5"],
    "priority": 5,
}
MUL = {
    "title": "Add function multiply",
    "description": "multiply(a, b)",
    "acceptance_criteria": ["multiply(2, 3) == 6"],
    "priority": 8,
    "depends_on": [0],
}


async def test_idea_to_done_through_breakdown_bug_loop_and_a_durable_deploy_gate(hub: Hub) -> None:
    reply = await hub.cmd("submit_idea", project="demo", text="Calculator library\nwith add and multiply")
    assert reply["task"]["key"] == "T-001"
    assert reply["task"]["title"] == "Calculator library"

    # The PM gets the idea and breaks it down; the breakdown waits for a human.
    pm = await hub.next_job("pm")
    assert pm.task.key == "T-001"
    assert pm.idea == "Calculator library\nwith add and multiply"
    assert (pm.attempt, pm.idempotency_key) == (1, "demo/T-001/pm/1")
    await hub.breakdown(pm, ADD, MUL)
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    assert [(t["state"], t["current_stage"]) for t in [await hub.task("T-002"), await hub.task("T-003")]] == [
        ("draft", "backlog"),
        ("draft", "backlog"),
    ]
    assert (await hub.task("T-003"))["blocked_by"] == [(await hub.task("T-002"))["id"]]
    assert hub.events_of("approval.requested", "T-001")
    await hub.no_job("dev", wait=0.3)  # nothing runs before the human approves

    approved = await hub.cmd("approve", project="demo", task_key="T-001", actor="alice")
    assert approved["task"]["state"] == "waiting_subtasks"
    assert {t["key"]: t["state"] for t in approved["released"]} == {"T-002": "queued", "T-003": "blocked"}
    assert approved["released"][1]["blocked_by"] == ["T-002"]

    # multiply has the higher priority but waits for add.
    dev = await hub.next_job("dev")
    assert dev.task.key == "T-002"
    assert dev.task.parent_key == "T-001"
    assert dev.handoff == {"source": "breakdown", "idea": "T-001"}
    assert dev.project.workspace.endswith("demo")
    assert dev.task.acceptance_criteria == ["add(2, 3) == 5"]
    await hub.finish(dev, summary="implemented add", commits=["abc123"], files_changed=["calc/add.py"])

    # QA fails: a bug with the failing test, back to DEV with the bug in its context.
    qa = await hub.next_job("qa")
    assert qa.handoff["commits"] == ["abc123"]
    assert qa.handoff["summary"] == "implemented add"
    await hub.fail_tests(qa, ["tests/test_add.py::test_add"], output="E   assert 6 == 5\nFULL LOG")
    rework = await hub.next_job("dev")
    assert (rework.task.key, rework.attempt) == ("T-002", 2)
    assert [b.key for b in rework.bugs] == ["B-001"]
    assert rework.bugs[0].reproduction["failed_tests"] == ["tests/test_add.py::test_add"]
    assert rework.handoff["bug"] == "B-001"
    assert (await hub.task("T-002"))["rework_count"] == 1
    [bug] = await hub.bugs("T-002")
    assert (bug["status"], bug["source_stage"], bug["created_by"]) == ("open", "qa", "agent:qa")
    await hub.finish(rework, summary="fixed add")

    qa2 = await hub.next_job("qa")
    await hub.finish(qa2)
    await hub.finish(await hub.next_job("sec"))
    assert [b["status"] for b in await hub.bugs("T-002")] == ["fixed"]
    await hub.finish(await hub.next_job("docs"))
    await hub.wait_state("T-002", "deploy", "awaiting_approval")

    # The gate is a row, not a timer: it survives an orchestrator restart.
    await hub.restart()
    assert await hub.state("T-002") == ("deploy", "awaiting_approval")
    await hub.no_job("testing", wait=0.3)
    await hub.cmd("approve", project="demo", task_key="T-002", actor="alice", note="ship it")
    testing = await hub.next_job("testing")
    assert testing.task.key == "T-002"
    assert testing.handoff["approval_note"] == "ship it"
    await hub.finish(testing)
    done = await hub.wait_state("T-002", "done", "done")
    assert done["completed_at"] is not None

    assert await hub.path("T-002") == [
        ("backlog", "dev"),
        ("dev", "qa"),
        ("qa", "dev"),
        ("dev", "qa"),
        ("qa", "sec"),
        ("sec", "docs"),
        ("docs", "deploy"),
        ("deploy", "testing"),
        ("testing", "done"),
    ]
    deploy = next(h for h in await hub.handoffs("T-002") if h["from_stage"] == "deploy")
    assert deploy["approved_by"] == "alice"
    assert [e["result_status"] for e in await hub.executions("T-002") if e["stage"] == "qa"] == [
        "fail",
        "pass",
    ]

    # multiply starts by itself now that add is done, and the idea finishes with it.
    mul = await hub.next_job("dev")
    assert mul.task.key == "T-003"
    for stage in ("dev", "qa", "sec", "docs"):
        job = mul if stage == "dev" else await hub.next_job(stage)
        await hub.finish(job)
    await hub.wait_state("T-003", "deploy", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-003")
    await hub.finish(await hub.next_job("testing"))
    await hub.wait_state("T-001", "done", "done")

    moved = [(e.task_key, e.from_stage, e.to_stage) for e in hub.events_of("task.moved")]
    assert ("T-002", "docs", "deploy") in moved
    assert ("T-001", "pm", "done") in moved
    assert all(e.actor == "agent:qa" for e in hub.events_of("bug.created"))


async def test_dispatch_follows_priority_then_age(make_hub: Any, tmp_path: Path) -> None:
    # One DEV slot, several tasks of one project allowed at once: DEV's order shows the priorities.
    h: Hub = await make_hub(
        config(
            pipeline={
                "max_parallel_per_project": 10,
                "stages": [
                    {"name": "pm", "agent": "pm", "gate": True},
                    {"name": "dev", "agent": "dev", "wip_limit": 1},
                    {"name": "qa", "agent": "qa", "on_fail": "dev"},
                ],
            }
        )
    )
    await h.project("demo", tmp_path / "demo")
    await h.cmd("submit_idea", project="demo", text="Three things")
    plan = [
        {"title": f"Task p{p}", "description": "d", "acceptance_criteria": ["ok"], "priority": p}
        for p in (3, 9, 7, 9)
    ]
    await h.breakdown(await h.next_job("pm"), *plan)
    await h.wait_state("T-001", "pm", "awaiting_approval")
    await h.cmd("approve", project="demo", task_key="T-001")
    order = []
    for _ in plan:
        job = await h.next_job("dev")
        order.append(job.task.title)
        await h.finish(job)
    assert order == ["Task p9", "Task p9", "Task p7", "Task p3"]
    assert [(await h.task(k))["priority"] for k in ("T-003", "T-005")] == [9, 9]
    first_dev = next(e for e in h.events_of("execution.dispatched") if e.stage == "dev")
    assert first_dev.task_key == "T-003", "equal priorities go oldest (lowest key) first"


async def test_one_project_runs_one_job_at_a_time_others_run_in_parallel(hub: Hub, tmp_path: Path) -> None:
    await hub.project("other", tmp_path / "other")
    await hub.cmd("submit_idea", project="demo", text="First idea")
    await hub.cmd("submit_idea", project="demo", text="Second idea")
    await hub.cmd("submit_idea", project="other", text="Elsewhere")
    got = {(j.project.slug, j.task.key) for j in [await hub.next_job("pm"), await hub.next_job("pm")]}
    assert got == {("demo", "T-001"), ("other", "T-001")}
    await hub.no_job("pm", wait=0.3)  # demo's second idea waits for its slot
    assert await hub.state("T-002") == ("pm", "queued")
