"""The pipeline switch and the runners' heartbeats."""

from __future__ import annotations

from pydantic import BaseModel
from wf_common.jobs import RunnerHeartbeat

RunnerOut = RunnerHeartbeat


class ControlOut(BaseModel):
    paused: bool
