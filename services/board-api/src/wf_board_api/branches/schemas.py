"""Pause scopes, pending pushes, rollback and checkpoints."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field


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
    to_stage: str = Field(min_length=1, max_length=20, description="the stage to go back to, e.g. dev")
