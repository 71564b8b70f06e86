"""What every transaction needs besides its connection: the pipeline, and caches of facts that never
change once written (task keys, projects, agent ids), so events and jobs cost no extra queries."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import RowMapping, any_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.config import BudgetConfig, PipelineConfig
from wf_common.db.tables import agents, projects, tasks
from wf_common.events import BugSnapshot, ProjectSnapshot, TaskSnapshot

from wf_orchestrator.ids import IdPool
from wf_orchestrator.memory import Memory
from wf_orchestrator.tasks.rows import ProjectRow, TaskRow

_KEYS = select(tasks.c.id, tasks.c.task_key).where(tasks.c.id == any_(bindparam("ids")))


@dataclass
class Context:
    pipeline: PipelineConfig
    default_test_command: str = "python -m pytest"
    keys: dict[int, str] = field(default_factory=dict)  # task id → key
    projects: dict[int, ProjectRow] = field(default_factory=dict)
    agent_ids: dict[str, int] = field(default_factory=dict)  # role → agents.id
    budgets: BudgetConfig = field(default_factory=BudgetConfig)  # config cost.budgets (see budgets.py)
    memory: Memory = field(default_factory=Memory)  # in-flight jobs and attempts (wf_orchestrator.memory)
    ids: IdPool | None = None  # where every execution and handoff id comes from (set at start)

    # ------------------------------------------------------------------------------------ loading

    async def load_agents(self, conn: AsyncConnection) -> None:
        rows = (await conn.execute(select(agents.c.role, agents.c.id))).all()
        self.agent_ids = {r.role: r.id for r in rows}
        missing = [s.agent for s in self.pipeline.stages if s.agent and s.agent not in self.agent_ids]
        if missing:
            raise RuntimeError(f"the agents table has no row for {missing}: run the migrations")

    def remember(self, *rows: TaskRow) -> None:
        for r in rows:
            self.keys[r.id] = r.task_key

    async def ensure_keys(self, conn: AsyncConnection, ids: Iterable[int | None]) -> None:
        missing = {i for i in ids if i is not None and i not in self.keys}
        if missing:
            rows = await conn.execute(_KEYS, {"ids": list(missing)})
            self.keys.update({r.id: r.task_key for r in rows})

    async def project(self, conn: AsyncConnection, project_id: int) -> ProjectRow:
        p = self.projects.get(project_id)
        if p is None:
            row = (await conn.execute(select(projects).where(projects.c.id == project_id))).mappings().one()
            p = self.projects[project_id] = ProjectRow.of(row)
        return p

    async def ensure_projects(self, conn: AsyncConnection, ids: Iterable[int]) -> None:
        missing = {i for i in ids if i not in self.projects}
        if missing:
            rows = (await conn.execute(select(projects).where(projects.c.id.in_(missing)))).mappings()
            self.projects.update({r["id"]: ProjectRow.of(r) for r in rows})

    # ---------------------------------------------------------------------------------- snapshots

    async def snapshot(self, conn: AsyncConnection, task: TaskRow) -> TaskSnapshot:
        await self.ensure_keys(conn, [*task.blocked_by, task.parent_id])
        await self.ensure_projects(conn, [task.project_id])
        return self.snapshot_cached(task)

    def snapshot_cached(self, task: TaskRow) -> TaskSnapshot:
        """The snapshot, when the keys of its blockers and parent and its project are cached."""
        self.keys[task.id] = task.task_key
        return TaskSnapshot(
            project=self.projects[task.project_id].slug,
            key=task.task_key,
            title=task.title,
            description=task.description,
            acceptance_criteria=task.acceptance_criteria,
            stage=task.current_stage,
            state=task.state,
            priority=task.priority,
            blocked_by=[self.keys.get(b, f"#{b}") for b in task.blocked_by],
            parent=self.keys.get(task.parent_id) if task.parent_id is not None else None,
            rework_count=task.rework_count,
            created_by=task.created_by,
            status_reason=task.status_reason,
            updated_at=task.updated_at,
        )

    def bug_snapshot(self, bug: RowMapping | dict[str, Any], task_key: str) -> BugSnapshot:
        return BugSnapshot(
            project=self.projects[bug["project_id"]].slug,
            key=bug["bug_key"],
            task_key=task_key,
            title=bug["title"],
            description=bug["description"],
            source_stage=bug["source_stage"],
            status=bug["status"],
            reproduction=dict(bug["reproduction"] or {}),
        )


def project_snapshot(p: ProjectRow) -> ProjectSnapshot:
    return ProjectSnapshot(slug=p.slug, name=p.name, workspace=p.workspace, test_command=p.test_command)
