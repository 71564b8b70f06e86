"""Bugs as the API shows them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from wf_board_api.schemas import Body


class BugOut(BaseModel):
    project: str
    key: str
    task_key: str
    title: str
    description: str
    source_stage: str
    status: str
    reproduction: dict[str, Any]
    created_by: str
    created_at: datetime
    fixed_at: datetime | None
    killed_at: datetime | None
    killed_by: str | None
    kill_reason: str | None


class KillBugBody(Body):
    reason: str = Field("", max_length=5000)
