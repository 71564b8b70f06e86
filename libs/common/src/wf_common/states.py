"""Task states within a stage, and the vocabulary of results.

A task always has a stage (a board column) and a state (what is happening to it there).
"""

from __future__ import annotations

from enum import StrEnum


class TaskState(StrEnum):
    DRAFT = "draft"  # made by the PM, waiting for the breakdown to be approved
    BLOCKED = "blocked"  # waiting for the tasks in blocked_by to be done
    QUEUED = "queued"  # ready; dispatched when a slot is free and not paused
    RUNNING = "running"  # a job for this stage is on the bus or with a runner
    AWAITING_APPROVAL = "awaiting_approval"  # at a human gate
    NEEDS_HUMAN = "needs_human"  # rework cap reached, agent asked, or output kept failing
    FAILED = "failed"  # the job could not run (model down, crashes); `wf retry`
    WAITING_SUBTASKS = "waiting_subtasks"  # an idea whose tasks are in progress
    DONE = "done"
    CANCELLED = "cancelled"  # a draft dropped when its breakdown was rejected


ACTIVE_STATES = frozenset({TaskState.QUEUED, TaskState.RUNNING, TaskState.BLOCKED})
RETRYABLE_STATES = frozenset({TaskState.FAILED, TaskState.NEEDS_HUMAN})


class ExecutionStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    PAUSED = "paused"


class Verdict(StrEnum):
    PASS = "pass"  # noqa: S105 - a name, not a password
    FAIL = "fail"
    ERROR = "error"  # the job could not produce a verdict (infrastructure, model unreachable)
