"""The pipeline switch and the runners' heartbeats."""

from __future__ import annotations

from pydantic import BaseModel, Field
from wf_common.jobs import RunnerHeartbeat

from wf_board_api.branches.schemas import PausedTask, PendingPush

RunnerOut = RunnerHeartbeat


class ControlOut(BaseModel):
    paused: bool
    # Pauses of one project or one task (wf pause --project P, wf pause T-002).
    paused_projects: list[str] = Field(default_factory=list)
    paused_tasks: list[PausedTask] = Field(default_factory=list)
    # Merged main branches whose push waits for the remote (offline), retried with backoff.
    pending_pushes: list[PendingPush] = Field(default_factory=list)
