"""What the state machine reads (facts) and what it answers (decisions). Plain data, no I/O.

The machine never sees the database: the caller gathers the facts (a task row, whether its blockers are
done, a result) and applies the decision (rows to write, events to publish). Anything only the database
knows when the decision is applied (a new bug's key, the ids of created children) is filled in by the
caller; the decision says where (see `Handoff.payload` keys named in the docstrings below).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from wf_common.jobs import PlannedTask
from wf_common.states import ExecutionStatus, TaskState


@dataclass(frozen=True)
class TaskFacts:
    """The part of a task the machine decides on."""

    key: str
    stage: str
    state: TaskState
    rework_count: int = 0
    # True when every task in blocked_by is done (trivially true when blocked_by is empty).
    blockers_done: bool = True
    is_idea: bool = False  # a human's idea (no parent); the PM breaks it down


@dataclass(frozen=True)
class ResultFacts:
    """The part of a runner's `Result` the machine decides on (see wf_common.jobs.Result)."""

    stage: str
    status: str  # wf_common.states.Verdict value
    summary: str = ""
    escalate: bool = False
    error_message: str | None = None
    # Everything worth passing to the next stage (summary, commits, test run summary, findings, ...).
    handoff: dict[str, Any] = field(default_factory=dict)
    # For a bug: reproduction (failed tests, output tail, command, exit code, findings) and the full output.
    reproduction: dict[str, Any] = field(default_factory=dict)
    full_output: str | None = None
    # Files the stage attached (screenshots, traces, logs): (filename, content type, bytes).
    files: tuple[tuple[str, str, bytes], ...] = ()


@dataclass(frozen=True)
class Place:
    """Where a task ends up: its stage (board column) and its state there."""

    stage: str
    state: TaskState
    reason: str | None = None


@dataclass(frozen=True)
class Handoff:
    """A `handoffs` row to write. The caller adds `bug` (the new bug's key) to `payload` when the
    decision also creates a bug, and `tasks` (the created children's keys) for a PM breakdown."""

    from_stage: str
    to_stage: str
    payload: dict[str, Any]
    notes: str = ""
    requires_approval: bool = False
    # Written already approved by the actor (the move out of a gate the human just approved).
    approved: bool = False


@dataclass(frozen=True)
class NewBug:
    title: str
    description: str
    source_stage: str
    reproduction: dict[str, Any]
    # The full test output, stored as an attachment `<stage>-output.txt` when present.
    attachment: str | None = None
    files: tuple[tuple[str, str, bytes], ...] = ()  # more attachments (name, content type, bytes)


@dataclass(frozen=True)
class Decision:
    """The outcome of one input for one task.

    Events follow mechanically: TaskMoved when `place.stage` differs from the old stage,
    TaskStateChanged when the state differs, ApprovalRequested when `approval_requested`,
    BugCreated for `bug`, BugFixed for each bug fixed by `fix_bugs_of_stage`, TaskCreated for children.
    """

    place: Place
    handoff: Handoff | None = None
    bug: NewBug | None = None
    # Set for results: how the execution ends.
    execution_status: ExecutionStatus | None = None
    rework_count: int | None = None  # the new value when it changes
    fix_bugs_of_stage: str | None = None  # open bugs raised by this stage become fixed
    children: tuple[PlannedTask, ...] = ()  # the PM's breakdown, created as drafts
    approval_requested: bool = False
    completed: bool = False  # the task reached done


@dataclass(frozen=True)
class Candidate:
    """A queued task the dispatcher may start (already in dispatch order from the query)."""

    task_id: int
    project_id: int
    stage: str
    priority: int
    order: tuple[Any, ...] = ()  # (created_at, id): ties after priority


@dataclass(frozen=True)
class Load:
    """Jobs running now, per stage and per project."""

    by_stage: dict[str, int] = field(default_factory=dict)
    by_project: dict[int, int] = field(default_factory=dict)


__all__ = [
    "Candidate",
    "Decision",
    "ExecutionStatus",
    "Handoff",
    "Load",
    "NewBug",
    "Place",
    "ResultFacts",
    "TaskFacts",
    "TaskState",
]
