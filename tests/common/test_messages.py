"""Messages on the bus: the PM's breakdown schema, commands, events and subjects."""

import pytest
from pydantic import ValidationError
from wf_common.commands import COMMAND_ADAPTER, COMMAND_TYPES, Approve
from wf_common.events import EVENT_ADAPTER, TaskMoved, TaskSnapshot, parse_event
from wf_common.jobs import Breakdown, breakdown_json_schema
from wf_common.subjects import event_subject, job_subject


def _task(title: str, deps: list[int]) -> dict[str, object]:
    return {
        "title": title,
        "description": "do it",
        "acceptance_criteria": ["works"],
        "priority": 5,
        "depends_on": deps,
    }


def test_breakdown_schema_is_what_the_model_is_asked_for() -> None:
    schema = breakdown_json_schema()
    item = schema["$defs"]["PlannedTask"]
    assert set(item["required"]) >= {"title", "description", "acceptance_criteria", "priority"}
    assert item["properties"]["priority"]["maximum"] == 10
    ok = Breakdown.model_validate({"tasks": [_task("parse", []), _task("store", [0])]})
    assert ok.tasks[1].depends_on == [0]


@pytest.mark.parametrize(
    ("tasks", "message"),
    [
        ([_task("aaa", [3])], "depends_on: 3 is not an index"),
        ([_task("aaa", [0])], "cannot depend on itself"),
        ([_task("aaa", [1]), _task("bbb", [0])], "cycle"),
        ([], "at least 1 item"),
    ],
)
def test_breakdown_rejects_bad_dependencies(tasks: list[dict[str, object]], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Breakdown.model_validate({"tasks": tasks})


def test_commands_validate_and_normalise() -> None:
    cmd = COMMAND_ADAPTER.validate_python({"type": "approve", "project": "listsnap", "task_key": "t-002"})
    assert isinstance(cmd, Approve)
    assert cmd.task_key == "T-002"
    assert cmd.actor == "human"
    with pytest.raises(ValidationError, match="not a valid project slug"):
        COMMAND_ADAPTER.validate_python({"type": "submit_idea", "project": "List Snap", "text": "an idea"})
    assert "kill_bug" in COMMAND_TYPES
    assert len(COMMAND_TYPES) == len(set(COMMAND_TYPES))


def test_events_round_trip_through_the_union_with_their_subject() -> None:
    snap = TaskSnapshot(project="listsnap", key="T-002", title="t", stage="qa", state="queued", priority=5)
    ev = TaskMoved(
        project="listsnap", task_key="T-002", task=snap, from_stage="dev", to_stage="qa", handoff_id=7
    )
    assert ev.subject() == "wf.events.listsnap.T-002.task.moved"
    back = parse_event(ev.model_dump_json())
    assert isinstance(back, TaskMoved)
    assert back.task.stage == "qa"
    assert back.schema_version == 1
    # A newer sender's extra field does not break this reader.
    data = EVENT_ADAPTER.dump_python(ev, mode="json") | {"new_field": 1}
    assert isinstance(EVENT_ADAPTER.validate_python(data), TaskMoved)


def test_subjects_refuse_unsafe_tokens() -> None:
    assert job_subject("dev") == "wf.jobs.dev"
    assert event_subject(None, None, "control.changed") == "wf.events._._.control.changed"
    with pytest.raises(ValueError, match="cannot be used in a NATS subject"):
        job_subject("dev.>")
