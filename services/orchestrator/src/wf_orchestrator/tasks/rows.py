"""Typed views of database rows (SQLAlchemy Core returns mappings; the code wants attributes)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import RowMapping
from wf_common.states import TaskState

from wf_orchestrator.pipeline.model import TaskFacts


@dataclass(slots=True)
class ProjectRow:
    id: int
    slug: str
    name: str
    workspace: str
    test_command: str

    @classmethod
    def of(cls, m: RowMapping | dict[str, Any]) -> ProjectRow:
        return cls(m["id"], m["slug"], m["name"], m["workspace"], m["test_command"])


@dataclass(slots=True)
class TaskRow:
    id: int
    project_id: int
    task_key: str
    title: str
    description: str
    acceptance_criteria: list[str]
    current_stage: str
    state: str
    status_reason: str | None
    current_execution_id: int | None
    priority: int
    blocked_by: list[int]
    parent_id: int | None
    rework_count: int
    created_by: str
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None

    @classmethod
    def of(cls, m: RowMapping | dict[str, Any]) -> TaskRow:
        return cls(
            id=m["id"],
            project_id=m["project_id"],
            task_key=m["task_key"],
            title=m["title"],
            description=m["description"],
            acceptance_criteria=list(m["acceptance_criteria"] or []),
            current_stage=m["current_stage"],
            state=m["state"],
            status_reason=m["status_reason"],
            current_execution_id=m["current_execution_id"],
            priority=m["priority"],
            blocked_by=list(m["blocked_by"] or []),
            parent_id=m["parent_id"],
            rework_count=m["rework_count"],
            created_by=m["created_by"],
            created_at=m["created_at"],
            updated_at=m["updated_at"],
            completed_at=m["completed_at"],
        )

    @property
    def is_idea(self) -> bool:
        return self.parent_id is None

    def facts(self, *, blockers_done: bool = True) -> TaskFacts:
        return TaskFacts(
            key=self.task_key,
            stage=self.current_stage,
            state=TaskState(self.state),
            rework_count=self.rework_count,
            blockers_done=blockers_done or not self.blocked_by,
            is_idea=self.is_idea,
        )
