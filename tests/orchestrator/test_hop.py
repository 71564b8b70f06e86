"""The one-statement hop: a Result that just moves its task on is applied by one guarded statement
with the next Job from memory; when a guard fails (something changed behind the memory's back, the
next stage is full) nothing is written by it and the locked path does the work."""

from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

from sqlalchemy import text
from wf_common import bus, subjects
from wf_common.jobs import Result
from wf_orchestrator.hop import Hop

from tests.orchestrator.conftest import config
from tests.orchestrator.hub import Hub, eventually
from tests.orchestrator.test_reliability import dev_job_of_a_child


def hop_of(hub: Hub) -> Hop:
    assert hub.orchestrator is not None
    hop = hub.orchestrator.results.hop
    assert hop is not None
    return hop


async def counted(hub: Hub, **expected: int) -> None:
    """The hop's counters reach `expected` (they move just after the next Job is published)."""

    async def check() -> bool:
        hop = hop_of(hub)
        return all(getattr(hop, k) == v for k, v in expected.items())

    await eventually(check, within=5, what=f"hop counters {expected}")


async def approved_breakdown(hub: Hub, tmp_path: Path, *titles: str) -> None:
    """Project `demo`, an idea broken down into tasks of these titles (T-002 on), approved."""
    await hub.project("demo", tmp_path / "demo")
    await hub.cmd("submit_idea", project="demo", text="An idea")
    step = {"description": "d", "acceptance_criteria": ["ok"], "priority": 5}
    await hub.breakdown(await hub.next_job("pm"), *({"title": t, **step} for t in titles))
    await hub.wait_state("T-001", "pm", "awaiting_approval")
    await hub.cmd("approve", project="demo", task_key="T-001")


async def test_a_plain_hop_moves_the_task_and_starts_the_next_job(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    await hub.finish(dev, summary="wrote it")
    qa = await hub.next_job("qa")
    await counted(hub, applied=1)
    assert (qa.task.key, qa.attempt, qa.idempotency_key) == ("T-002", 1, "demo/T-002/qa/1")
    assert (qa.handoff["from_stage"], qa.handoff["summary"]) == ("dev", "wrote it")
    assert qa.task.title == dev.task.title
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa")]
    handoff = (await hub.handoffs("T-002"))[-1]
    assert (handoff["from_execution_id"], handoff["to_execution_id"]) == (dev.job_id, qa.job_id)
    [ex_dev, ex_qa] = await hub.executions("T-002")
    assert (ex_dev["status"], ex_dev["result_summary"]) == ("completed", "wrote it")
    assert (ex_qa["id"], ex_qa["status"], ex_qa["incoming_handoff"]) == (qa.job_id, "pending", qa.handoff)
    task = await hub.task("T-002")
    assert (task["current_stage"], task["state"], task["current_execution_id"]) == (
        "qa",
        "running",
        qa.job_id,
    )
    moved = [e for e in hub.events_of("task.moved", "T-002") if e.to_stage == "qa"]
    assert len(moved) == 1
    # And the next hop, from what the first one left in memory.
    await hub.finish(qa)
    sec = await hub.next_job("sec")
    assert (sec.task.key, sec.attempt) == ("T-002", 1)
    await counted(hub, applied=2)


async def test_a_guard_that_fails_falls_back_to_the_locked_path(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    # Something changed the task behind the orchestrator's memory (as a racing command would).
    async with hub.db.begin() as conn:
        await conn.execute(text("UPDATE tasks SET updated_at = now() WHERE task_key = 'T-002'"))
    await hub.finish(dev)
    qa = await hub.next_job("qa")
    await counted(hub, guard_failed=1, applied=0)
    assert qa.task.key == "T-002"
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa")]
    assert [e["status"] for e in await hub.executions("T-002")] == ["completed", "pending"]
    # The locked path dispatched qa and memory knows it again: the next hop is one statement.
    await hub.finish(qa)
    await hub.next_job("sec")
    await counted(hub, guard_failed=1, applied=1)


async def test_a_statement_the_database_refuses_falls_back_to_the_locked_path(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    # The database refuses the first handoff written after this point, once: the hop's statement.
    # (A sequence is not rolled back with the failed statement, so the locked path's insert passes.)
    async with hub.db.begin() as conn:
        await conn.execute(text("CREATE SEQUENCE refuse_once"))
        await conn.execute(
            text(
                """CREATE FUNCTION refuse_once() RETURNS trigger LANGUAGE plpgsql AS $$
                   BEGIN
                     IF nextval('refuse_once') = 1 THEN RAISE EXCEPTION 'refused by the test'; END IF;
                     RETURN NEW;
                   END $$"""
            )
        )
        await conn.execute(
            text(
                "CREATE TRIGGER refuse_once BEFORE INSERT ON handoffs "
                "FOR EACH ROW EXECUTE FUNCTION refuse_once()"
            )
        )
    await hub.finish(dev, summary="wrote it")
    qa = await hub.next_job("qa")
    await counted(hub, applied=0)
    assert qa.task.key == "T-002"
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa")]  # one handoff, not two
    assert [e["status"] for e in await hub.executions("T-002")] == ["completed", "pending"]
    await hub.no_job("qa")


async def test_a_lost_hop_connection_is_opened_again_and_the_result_applied_once(hub: Hub) -> None:
    dev = await dev_job_of_a_child(hub)
    await hub.finish(dev)
    qa = await hub.next_job("qa")
    await counted(hub, applied=1)
    connection = hop_of(hub)._connection
    assert connection._driver is not None
    pid = connection._driver.get_server_pid()
    async with hub.db.begin() as conn:  # as a database restart or a network cut would
        await conn.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": pid})
    await hub.finish(qa)
    sec = await hub.next_job("sec", within=10)
    assert (sec.task.key, sec.attempt) == ("T-002", 1)
    await counted(hub, applied=2)  # the Result came back (nak'ed) and the hop applied it, once
    assert connection._driver is not None
    assert connection._driver.get_server_pid() != pid  # a new connection
    assert [(e["stage"], e["status"]) for e in await hub.executions("T-002")] == [
        ("dev", "completed"),
        ("qa", "completed"),
        ("sec", "pending"),
    ]
    await hub.no_job("sec")


async def test_a_full_next_stage_leaves_the_task_queued_until_a_slot_frees(
    make_hub: Any, tmp_path: Path
) -> None:
    stages: list[dict[str, Any]] = [dict(s) for s in config().model_dump()["pipeline"]["stages"]]
    for s in stages:
        if s["name"] == "qa":
            s["wip_limit"] = 1
    hub: Hub = await make_hub(config(pipeline={"stages": stages, "max_parallel_per_project": 5}))
    await approved_breakdown(hub, tmp_path, "First", "Second")
    first, second = await hub.next_job("dev"), await hub.next_job("dev")
    await hub.finish(first)
    qa = await hub.next_job("qa")
    await hub.finish(second)  # qa is full: the guard fails, the locked path queues it
    await hub.wait_state(second.task.key, "qa", "queued")
    await counted(hub, applied=1, guard_failed=1)
    await hub.finish(qa)
    nxt = await hub.next_job("qa")
    assert nxt.task.key == second.task.key
    await hub.wait_state(first.task.key, "sec", "running")


async def test_results_that_arrive_together_are_applied_in_one_transaction(
    make_hub: Any, tmp_path: Path
) -> None:
    stages: list[dict[str, Any]] = [dict(s) for s in config().model_dump()["pipeline"]["stages"]]
    for s in stages:
        s["wip_limit"] = 10
    hub: Hub = await make_hub(config(pipeline={"stages": stages, "max_parallel_per_project": 10}))
    await approved_breakdown(hub, tmp_path, *(f"Part {i}" for i in range(3)))
    devs = [await hub.next_job("dev") for _ in range(3)]
    hop = hop_of(hub)
    assert hub.orchestrator is not None
    assert hub.js is not None
    lock = hub.orchestrator.runner.dispatch_lock
    # While the lock is held (as by a dispatch pass), the hops queue up; the next holder writes them all.
    await lock.acquire()
    try:
        for dev in devs:
            await hub.finish(dev)
        # The first Result again, as a redelivery would bring it while the first is still queued.
        again = Result.answering(devs[0], "pass", "dev pass", runner_id="test-runner")
        await bus.publish(hub.js, subjects.result_subject("dev"), again, msg_id="again")

        async def queued() -> bool:
            return len(hop._queue) == 4

        await eventually(queued, within=5, what="four hops queued behind the lock")
    finally:
        lock.release()
    qas = {(await hub.next_job("qa")).task.key for _ in devs}
    assert qas == {d.task.key for d in devs}
    await counted(hub, applied=3, batches=1)
    await hub.no_job("qa")  # each task got exactly one qa job
    for dev in devs:
        assert [(e["stage"], e["status"]) for e in await hub.executions(dev.task.key)] == [
            ("dev", "completed"),
            ("qa", "pending"),
        ]
        assert await hub.path(dev.task.key) == [("backlog", "dev"), ("dev", "qa")]


async def test_hops_written_together_do_not_overfill_the_next_stage(make_hub: Any, tmp_path: Path) -> None:
    stages: list[dict[str, Any]] = [dict(s) for s in config().model_dump()["pipeline"]["stages"]]
    for s in stages:
        s["wip_limit"] = 2 if s["name"] == "qa" else 10
    hub: Hub = await make_hub(config(pipeline={"stages": stages, "max_parallel_per_project": 10}))
    await approved_breakdown(hub, tmp_path, *(f"Part {i}" for i in range(3)))
    devs = [await hub.next_job("dev") for _ in range(3)]
    hop = hop_of(hub)
    assert hub.orchestrator is not None
    lock = hub.orchestrator.runner.dispatch_lock
    # Queued behind the lock, the three hops into QA are written in one transaction: memory learns
    # of the first two jobs only after it commits, yet the third must see QA full.
    await lock.acquire()
    try:
        for dev in devs:
            await hub.finish(dev)

        async def queued() -> bool:
            return len(hop._queue) == 3

        await eventually(queued, within=5, what="three hops queued behind the lock")
    finally:
        lock.release()
    first_two = {(await hub.next_job("qa")).task.key for _ in range(2)}
    await hub.no_job("qa")  # QA's WIP limit is 2
    (third,) = {d.task.key for d in devs} - first_two
    await hub.wait_state(third, "qa", "queued")
    assert hub.orchestrator.ctx.memory.jobs_in_stage("qa") == 2


async def test_a_bound_of_running_jobs_left_too_high_still_lets_a_hop_in_and_the_sweep_corrects_it(
    make_hub: Any, tmp_path: Path
) -> None:
    stages: list[dict[str, Any]] = [dict(s) for s in config().model_dump()["pipeline"]["stages"]]
    for s in stages:
        s["wip_limit"] = 2 if s["name"] == "qa" else 10
    hub: Hub = await make_hub(config(pipeline={"stages": stages}), sweep_interval_seconds=3600)
    await hub.project("demo", tmp_path / "demo")
    job = await dev_job_of_a_child(hub)
    assert hub.orchestrator is not None
    memory = hub.orchestrator.ctx.memory
    project_id = memory.inflight[job.job_id].task.project_id
    # Two ends memory missed: it believes QA is full, where nothing runs in it.
    for phantom in (10**9, 10**9 + 1):
        memory._job_started(phantom, "qa", project_id)
    hop = hop_of(hub)
    applied = hop.applied
    await hub.finish(job)
    assert (await hub.next_job("qa")).task.key == job.task.key  # the statement counted in SQL: room
    assert hop.applied == applied + 1
    await hub.orchestrator.sweeper.reload_jobs()
    assert memory.jobs_in_stage("qa") == 1


async def test_a_result_that_brings_its_task_to_the_deploy_gate_is_one_statement_too(hub: Hub) -> None:
    job = await dev_job_of_a_child(hub)
    for stage in ("qa", "sec", "docs"):
        await hub.finish(job)
        job = await hub.next_job(stage)
    await hub.finish(job, summary="documented it")
    await counted(hub, applied=4, gates=1)  # dev→qa, qa→sec, sec→docs, and docs→deploy
    task = await hub.wait_state("T-002", "deploy", "awaiting_approval")
    assert (task["current_execution_id"], task["status_reason"]) == (None, None)
    assert await hub.path("T-002") == [("backlog", "dev"), ("dev", "qa"), ("qa", "sec"), ("sec", "docs"),
                                       ("docs", "deploy")]  # fmt: skip
    gate = (await hub.handoffs("T-002"))[-1]
    assert (gate["from_execution_id"], gate["to_execution_id"], gate["requires_approval"]) == (
        job.job_id,
        None,
        True,
    )
    assert (gate["approved_at"], gate["notes"]) == (None, "documented it")
    assert (await hub.executions("T-002"))[-1]["status"] == "completed"

    async def asked() -> bool:
        return [(e.stage, e.handoff_id) for e in hub.events_of("approval.requested", "T-002")] == [
            ("deploy", gate["id"])
        ]

    await eventually(asked, within=5, what="one approval.requested for the deploy gate")
    # The human's approval finds the gate the statement wrote, and the task goes on to testing.
    await hub.cmd("approve", project="demo", task_key="T-002")
    testing = await hub.next_job("testing")
    assert testing.task.key == "T-002"
    approved = [h for h in await hub.handoffs("T-002") if h["id"] == gate["id"]]
    assert approved[0]["approved_by"] is not None


async def test_a_task_that_stops_at_a_gate_frees_its_projects_slot_for_a_queued_task(
    make_hub: Any, tmp_path: Path
) -> None:
    """One job at a time per project: the second task waits queued while the first works, and starts
    when the first stops at the deploy gate (its project's slot freed, though no task was queued in
    the stage it left). No sweep comes to start it in the meantime: only the freed slot can."""
    hub: Hub = await make_hub(config(pipeline={"max_parallel_per_project": 1}), sweep_interval_seconds=3600)
    await approved_breakdown(hub, tmp_path, "First", "Second")
    gated: set[str] = set()
    finished = 0
    while gated != {"T-002", "T-003"}:
        stage = await eventually(
            functools.partial(_running_stage, hub, after=finished),
            within=10,
            what=f"a task running besides {gated}",
        )
        job = await hub.next_job(stage)
        await hub.finish(job)
        finished = job.job_id
        if job.stage == "docs":
            await hub.wait_state(job.task.key, "deploy", "awaiting_approval")
            gated.add(job.task.key)
    await counted(hub, gates=2)


async def _running_stage(hub: Hub, *, after: int) -> str | None:
    """The stage of the task running now, other than the one whose execution `after` just finished."""
    query = text(
        "SELECT current_stage FROM tasks"
        " WHERE state = 'running' AND parent_id IS NOT NULL AND current_execution_id <> :after"
    )
    async with hub.db.connect() as conn:
        stage: str | None = await conn.scalar(query, {"after": after})
    return stage
