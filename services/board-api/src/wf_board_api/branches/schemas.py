"""Pause scopes, pending pushes, rollback and checkpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field
from wf_common.fields import StageName


class PausedTask(BaseModel):
    project: str
    key: str


class PendingPush(BaseModel):
    project: str
    remote: str
    branch: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None = None


class RollbackBody(BaseModel):
    to_stage: StageName = Field(description="the stage to go back to, e.g. dev")
