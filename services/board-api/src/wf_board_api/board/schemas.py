"""The kanban board: every column in pipeline order with its tasks."""

from __future__ import annotations

from pydantic import BaseModel
from wf_common.events import TaskSnapshot


class BoardOut(BaseModel):
    paused: bool
    stages: list[str]
    columns: dict[str, list[TaskSnapshot]]
