"""The pure state machine: every transition a task can make, without a database or a bus."""

from __future__ import annotations

from typing import Any

import pytest
from wf_common import jobs
from wf_common.config import PipelineConfig, StageConfig
from wf_common.errors import CommandError
from wf_common.jobs import Finding, PlannedTask, Result
from wf_common.states import ExecutionStatus, TaskState
from wf_orchestrator.pipeline import machine, results
from wf_orchestrator.pipeline.model import Decision, ResultFacts, TaskFacts

P = PipelineConfig()
S = TaskState


def task(stage: str, state: TaskState = S.RUNNING, **kw: Any) -> TaskFacts:
    return TaskFacts(key="T-002", stage=stage, state=state, **kw)


def hop(d: Decision) -> tuple[str, str] | None:
    return (d.handoff.from_stage, d.handoff.to_stage) if d.handoff else None


def verdict(stage: str, status: str = "pass", **kw: Any) -> ResultFacts:
    return ResultFacts(stage=stage, status=status, **kw)


PLAN = (
    PlannedTask(title="Add add", description="d", acceptance_criteria=["ok"], priority=8),
    PlannedTask(title="Add mul", description="d", acceptance_criteria=["ok"], priority=5, depends_on=[0]),
)


def test_an_idea_goes_from_backlog_straight_to_the_pm_queue() -> None:
    d = machine.submit_idea(P)
    assert (d.place.stage, d.place.state) == ("pm", S.QUEUED)
    assert d.handoff
    assert hop(d) == ("backlog", "pm")


def test_a_pass_hands_the_task_to_the_next_stage_and_fixes_the_stages_bugs() -> None:
    d = machine.on_result(P, task("dev"), verdict("dev", summary="implemented add", handoff={"summary": "x"}))
    assert (d.place.stage, d.place.state) == ("qa", S.QUEUED)
    assert hop(d) == ("dev", "qa")
    assert d.handoff
    assert d.handoff.payload == {"summary": "x"}
    assert d.execution_status == ExecutionStatus.COMPLETED
    assert d.fix_bugs_of_stage == "dev"
    assert not d.approval_requested
    assert not d.completed


def test_a_pass_into_a_stage_whose_blockers_are_not_done_blocks_the_task() -> None:
    d = machine.on_result(P, task("dev", blockers_done=False), verdict("dev"))
    assert (d.place.stage, d.place.state) == ("qa", S.BLOCKED)


def test_docs_pass_waits_at_the_deploy_gate() -> None:
    d = machine.on_result(P, task("docs"), verdict("docs"))
    assert (d.place.stage, d.place.state) == ("deploy", S.AWAITING_APPROVAL)
    assert d.handoff
    assert d.handoff.requires_approval
    assert d.approval_requested


def test_the_last_stage_passing_makes_the_task_done() -> None:
    d = machine.on_result(P, task("testing"), verdict("testing"))
    assert (d.place.stage, d.place.state) == ("done", S.DONE)
    assert d.completed
    assert d.handoff
    assert d.handoff.to_stage == "done"


def test_the_pm_breakdown_creates_drafts_and_waits_for_approval() -> None:
    d = machine.on_result(P, task("pm", is_idea=True), verdict("pm"), PLAN)
    assert (d.place.stage, d.place.state) == ("pm", S.AWAITING_APPROVAL)
    assert d.children == PLAN
    assert d.approval_requested
    assert d.handoff
    assert hop(d) == ("pm", "dev")
    assert d.handoff.requires_approval


def test_a_pm_pass_without_breakdown_needs_a_human() -> None:
    d = machine.on_result(P, task("pm", is_idea=True), verdict("pm"))
    assert d.place.state == S.NEEDS_HUMAN
    assert "without a task breakdown" in (d.place.reason or "")


def test_a_gated_agent_stage_waits_with_a_pending_handoff_to_the_next_stage() -> None:
    gated = PipelineConfig(
        stages=[
            StageConfig(name="pm", agent="pm", gate=True),
            StageConfig(name="dev", agent="dev", gate=True),
            StageConfig(name="qa", agent="qa", on_fail="dev"),
        ]
    )
    d = machine.on_result(gated, task("dev"), verdict("dev"))
    assert (d.place.stage, d.place.state) == ("dev", S.AWAITING_APPROVAL)
    assert d.handoff
    assert hop(d) == ("dev", "qa")
    assert d.handoff.requires_approval
    approved = machine.on_approve(gated, task("dev", S.AWAITING_APPROVAL), {}, "")
    assert (approved.place.stage, approved.place.state) == ("qa", S.QUEUED)
    assert approved.handoff is None, "the pending handoff is the record of the move"


def test_a_qa_failure_files_a_bug_and_returns_to_dev() -> None:
    f = verdict(
        "qa",
        "fail",
        summary="1 test failed\nE assert",
        reproduction={"failed_tests": ["t::x"]},
        full_output="whole output",
        handoff={"summary": "1 test failed"},
    )
    d = machine.on_result(P, task("qa", rework_count=1), f)
    assert (d.place.stage, d.place.state) == ("dev", S.QUEUED)
    assert d.rework_count == 2
    assert d.bug
    assert d.bug.title == "1 test failed"
    assert d.bug.source_stage == "qa"
    assert d.bug.reproduction == {"failed_tests": ["t::x"]}
    assert d.bug.attachment == "whole output"
    assert d.handoff
    assert hop(d) == ("qa", "dev")
    assert d.execution_status == ExecutionStatus.COMPLETED


def test_the_rework_cap_stops_the_loop_and_asks_a_human() -> None:
    d = machine.on_result(P, task("sec", rework_count=3), verdict("sec", "fail", summary="secret in code"))
    assert (d.place.stage, d.place.state) == ("sec", S.NEEDS_HUMAN)
    assert (d.place.reason or "").startswith("rework limit (3) reached")
    assert d.bug is not None, "the failure is still recorded as a bug"
    assert d.handoff is None
    assert d.rework_count is None


def test_an_escalated_failure_needs_a_human_even_with_on_fail() -> None:
    d = machine.on_result(
        P, task("qa"), verdict("qa", "fail", summary="criteria are contradictory", escalate=True)
    )
    assert (d.place.stage, d.place.state, d.place.reason) == (
        "qa",
        S.NEEDS_HUMAN,
        "criteria are contradictory",
    )
    assert d.bug is None


def test_a_failure_where_no_stage_takes_it_back_needs_a_human() -> None:
    d = machine.on_result(P, task("dev"), verdict("dev", "fail", summary="cannot build this"))
    assert (d.place.state, d.place.reason) == (S.NEEDS_HUMAN, "cannot build this")


def test_an_error_fails_the_task_with_the_reason_and_it_stays_retryable() -> None:
    msg = "could not reach the Ollama server at http://localhost:11434; start it with ollama serve"
    d = machine.on_result(P, task("dev"), verdict("dev", "error", error_message=msg))
    assert (d.place.stage, d.place.state, d.place.reason) == ("dev", S.FAILED, msg)
    assert d.execution_status == ExecutionStatus.FAILED
    retry = machine.on_retry(P, task("dev", S.FAILED))
    assert (retry.place.stage, retry.place.state) == ("dev", S.QUEUED)


def test_retry_of_needs_human_restarts_the_rework_count() -> None:
    d = machine.on_retry(P, task("qa", S.NEEDS_HUMAN, rework_count=3))
    assert d.place.state == S.QUEUED
    assert d.rework_count == 0


def test_retry_of_a_running_task_is_refused() -> None:
    with pytest.raises(CommandError) as err:
        machine.on_retry(P, task("dev", S.RUNNING))
    assert err.value.code == "conflict"
    assert "running in dev" in err.value.message


def test_approving_a_task_that_is_not_at_a_gate_says_where_it_is() -> None:
    with pytest.raises(CommandError) as err:
        machine.on_approve(P, task("dev", S.RUNNING), {}, "")
    assert err.value.code == "conflict"
    assert err.value.message == "T-002 is not waiting for approval (it is running in dev)"
    with pytest.raises(CommandError):
        machine.on_reject(P, task("dev", S.QUEUED), "no")


def test_approving_the_breakdown_waits_for_the_subtasks_and_releases_drafts_into_dev() -> None:
    d = machine.on_approve(P, task("pm", S.AWAITING_APPROVAL, is_idea=True), {}, "")
    assert (d.place.stage, d.place.state) == ("pm", S.WAITING_SUBTASKS)
    free = machine.release_draft(P, TaskFacts("T-002", "backlog", S.DRAFT), "T-001")
    waiting = machine.release_draft(P, TaskFacts("T-003", "backlog", S.DRAFT, blockers_done=False), "T-001")
    assert (free.place.stage, free.place.state) == ("dev", S.QUEUED)
    assert (waiting.place.stage, waiting.place.state) == ("dev", S.BLOCKED)
    assert hop(free) == ("backlog", "dev")


def test_approving_deploy_moves_on_with_an_approved_handoff() -> None:
    d = machine.on_approve(P, task("deploy", S.AWAITING_APPROVAL), {"summary": "docs"}, "ship it")
    assert (d.place.stage, d.place.state) == ("testing", S.QUEUED)
    assert d.handoff
    assert d.handoff.approved
    assert hop(d) == ("deploy", "testing")
    assert d.handoff.payload == {"summary": "docs", "approval_note": "ship it"}


def test_rejecting_the_breakdown_reruns_the_pm_and_cancels_drafts() -> None:
    d = machine.on_reject(P, task("pm", S.AWAITING_APPROVAL, is_idea=True), "too coarse")
    assert (d.place.stage, d.place.state) == ("pm", S.QUEUED)
    assert d.handoff
    assert d.handoff.payload == {"rejected": {"stage": "pm", "reason": "too coarse"}}
    c = machine.cancel_draft(TaskFacts("T-002", "backlog", S.DRAFT), "T-001")
    assert c.place.state == S.CANCELLED
    assert "T-001" in (c.place.reason or "")


def test_rejecting_a_deploy_sends_the_task_back_to_dev() -> None:
    d = machine.on_reject(P, task("deploy", S.AWAITING_APPROVAL), "breaks login")
    assert (d.place.stage, d.place.state) == ("dev", S.QUEUED)
    assert d.handoff
    assert hop(d) == ("deploy", "dev")


def test_blockers_finishing_queue_a_blocked_task_and_new_blockers_block_a_queued_one() -> None:
    d = machine.on_blockers_changed(task("dev", S.BLOCKED, blockers_done=True))
    assert d
    assert d.place.state == S.QUEUED
    d = machine.on_blockers_changed(task("dev", S.QUEUED, blockers_done=False))
    assert d
    assert d.place.state == S.BLOCKED
    assert machine.on_blockers_changed(task("dev", S.RUNNING, blockers_done=False)) is None


def test_an_idea_is_finished_when_every_live_child_is_done() -> None:
    assert machine.idea_finished(["done", "cancelled", "done"])
    assert not machine.idea_finished(["done", "running"])
    assert not machine.idea_finished(["cancelled"])
    d = machine.on_idea_finished(task("pm", S.WAITING_SUBTASKS, is_idea=True))
    assert (d.place.stage, d.place.state) == ("done", S.DONE)
    assert d.completed


def test_titles_are_the_first_line_cut_to_length() -> None:
    assert machine.first_line("\n  Add dark mode  \nmore", 120) == "Add dark mode"
    long = machine.first_line("x" * 300, 120)
    assert len(long) == 120
    assert long.endswith("…")


def test_a_result_becomes_handoff_and_bug_reproduction() -> None:
    r = Result(
        job_id=1,
        idempotency_key="k",
        project="p",
        task_key="T-002",
        stage="qa",
        attempt=1,
        status="fail",
        summary="boom",
        commits=["abc"],
        test_run=jobs.TestRun(
            command="pytest", exit_code=1, passed=False, failed_tests=["t::a"], output_tail="FULL OUTPUT"
        ),
        findings=[Finding(rule="B105", path="a.py", line=3, message="secret")],
    )
    f = results.facts(r)
    assert f.reproduction == {
        "failed_tests": ["t::a"],
        "output_tail": "FULL OUTPUT",
        "command": "pytest",
        "exit_code": 1,
        "findings": [
            {"rule": "B105", "path": "a.py", "line": 3, "message": "secret", "severity": "medium", "tool": ""}
        ],
    }
    assert f.full_output == "FULL OUTPUT"
    assert f.handoff["commits"] == ["abc"]
    assert "output_tail" not in f.handoff["test_run"]
