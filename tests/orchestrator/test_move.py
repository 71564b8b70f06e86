"""Moving a card by hand (move_task): back for rework or within its stage; never forward, into done
or backlog, through a gate, or while it runs — each refusal says why."""

from __future__ import annotations

from typing import Any

import pytest
from wf_common.config import PipelineConfig
from wf_common.errors import CommandError
from wf_common.states import TaskState
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline.model import TaskFacts

P = PipelineConfig()
S = TaskState


def facts(stage: str, state: TaskState = S.QUEUED, **kw: Any) -> TaskFacts:
    return TaskFacts(key="T-002", stage=stage, state=state, **kw)


@pytest.mark.parametrize("state", [S.QUEUED, S.NEEDS_HUMAN, S.FAILED])
def test_back_to_an_earlier_stage_is_rework_with_a_handoff(state: TaskState) -> None:
    d = machine.on_move(P, facts("docs", state), "dev")
    assert (d.place.stage, d.place.state) == ("dev", S.QUEUED)
    assert d.handoff is not None
    assert (d.handoff.from_stage, d.handoff.to_stage) == ("docs", "dev")


def test_a_failed_task_dropped_on_its_own_stage_is_queued_again() -> None:
    d = machine.on_move(P, facts("qa", S.FAILED), "qa")
    assert (d.place.stage, d.place.state) == ("qa", S.QUEUED)
    assert d.handoff is None


def test_a_queued_task_dropped_on_its_own_stage_stays_as_it_is() -> None:
    d = machine.on_move(P, facts("qa", S.QUEUED), "qa")
    assert (d.place.stage, d.place.state) == ("qa", S.QUEUED)


def test_a_blocked_task_moved_back_stays_blocked() -> None:
    d = machine.on_move(P, facts("qa", S.QUEUED, blockers_done=False), "dev")
    assert (d.place.stage, d.place.state) == ("dev", S.BLOCKED)


@pytest.mark.parametrize(
    ("stage", "state", "to", "says"),
    [
        ("dev", S.QUEUED, "qa", "cannot move forward from dev to qa: that would skip dev"),
        ("dev", S.QUEUED, "done", "cannot be moved to done by hand"),
        ("dev", S.QUEUED, "backlog", "cannot be moved back to backlog"),
        ("qa", S.QUEUED, "deploy", "that would skip"),
        ("testing", S.FAILED, "deploy", "deploy is a gate"),
        ("dev", S.QUEUED, "pm", "pm is a gate"),
        ("dev", S.RUNNING, "dev", "it is running in dev"),
        ("backlog", S.DRAFT, "dev", "it is draft"),
        ("deploy", S.AWAITING_APPROVAL, "dev", "Approve it, or Reject it with a reason"),
        ("dev", S.QUEUED, "nowhere", "there is no stage 'nowhere'"),
    ],
)
def test_moves_that_are_refused_say_why(stage: str, state: TaskState, to: str, says: str) -> None:
    with pytest.raises(CommandError) as err:
        machine.on_move(P, facts(stage, state), to)
    assert says in err.value.message


def test_an_idea_is_not_moved_by_hand() -> None:
    with pytest.raises(CommandError) as err:
        machine.on_move(P, facts("pm", S.QUEUED, is_idea=True), "pm")
    assert "approve or reject its breakdown" in err.value.message
