"""Cancelling a task (cancel_task): a task that is not running, at a gate or finished, and that no
live task waits for; every refusal says why and what to do instead."""

from __future__ import annotations

import pytest
from wf_common.errors import CommandError
from wf_common.states import TaskState
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline.model import TaskFacts

from tests.orchestrator.hub import CommandFailed, Hub

S = TaskState
TASKS = [
    {"title": "First piece", "description": "one", "acceptance_criteria": ["works"], "priority": 5},
    {
        "title": "Second piece",
        "description": "two",
        "acceptance_criteria": ["works"],
        "priority": 5,
        "depends_on": [0],
    },
]


@pytest.mark.parametrize("state", [S.DRAFT, S.QUEUED, S.BLOCKED, S.NEEDS_HUMAN, S.FAILED])
def test_a_task_that_is_not_running_is_cancelled_where_it_is_with_the_reason(state: TaskState) -> None:
    d = machine.on_cancel(TaskFacts(key="T-002", stage="qa", state=state), "deleted in jira")
    assert (d.place.stage, d.place.state, d.place.reason) == ("qa", S.CANCELLED, "cancelled: deleted in jira")
    assert d.handoff is None


@pytest.mark.parametrize(
    ("state", "says"),
    [
        (S.RUNNING, "cannot be cancelled: it is"),
        (S.AWAITING_APPROVAL, "Reject it instead"),
        (S.DONE, "cannot be cancelled: it is"),
        (S.CANCELLED, "cannot be cancelled: it is"),
    ],
)
def test_running_gated_and_finished_tasks_are_not_cancelled(state: TaskState, says: str) -> None:
    with pytest.raises(CommandError, match=says) as err:
        machine.on_cancel(TaskFacts(key="T-002", stage="qa", state=state), "why")
    assert err.value.code == "conflict"


async def test_cancel_task_refuses_an_idea_and_a_blocker_then_cancels_the_free_task(hub: Hub) -> None:
    await hub.cmd("submit_idea", project="demo", text="Two pieces")
    pm = await hub.next_job("pm")
    await hub.breakdown(pm, *TASKS)
    await hub.wait_state("T-001", "pm", "awaiting_approval")

    with pytest.raises(CommandFailed, match="is an idea: reject its breakdown instead"):
        await hub.cmd("cancel_task", project="demo", task_key="T-001", reason="no")
    with pytest.raises(CommandFailed, match="T-003 wait for it"):
        await hub.cmd("cancel_task", project="demo", task_key="T-002", reason="no")
    assert (await hub.state("T-002")) == ("backlog", "draft")

    await hub.cmd("cancel_task", project="demo", task_key="T-003", reason="not needed")
    task = await hub.wait_state("T-003", "backlog", "cancelled")
    assert task["status_reason"] == "cancelled: not needed"
    # Nothing waits for T-002 any more.
    await hub.cmd("cancel_task", project="demo", task_key="T-002", reason="not needed either")
    await hub.wait_state("T-002", "backlog", "cancelled")
