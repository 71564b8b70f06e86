"""What the active orchestrator keeps in memory, knowing it is alone (it holds the lease):

- `inflight`: every job this process dispatched and that has not ended — the task row as the dispatch
  left it, the Job, the project — so a Result can be turned into the next Job without reading anything
  (wf_orchestrator.hop);
- `attempts`: the highest attempt per (task, stage), loaded at start for unfinished tasks and kept up
  to date by the only two places that insert executions (the dispatcher and the hop).

It is updated by the code that writes, after its commit (UnitOfWork.after_commit), and it is only ever
a prediction: every statement that relies on it is guarded in SQL, and a failed guard falls back to
the locked path, which forgets what it knew of that task.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.jobs import Job

from wf_orchestrator.tasks.rows import ProjectRow, TaskRow

_ATTEMPTS = text(
    "SELECT e.task_id, e.stage, max(e.attempt) AS attempt FROM executions e"
    " JOIN tasks t ON t.id = e.task_id WHERE t.state NOT IN ('done', 'cancelled') GROUP BY 1, 2"
)


@dataclass(slots=True)
class Inflight:
    task: TaskRow  # state running, current_execution_id = job.job_id
    job: Job
    project: ProjectRow


@dataclass
class Memory:
    inflight: dict[int, Inflight] = field(default_factory=dict)  # execution id → what it runs
    attempts: dict[tuple[int, str], int] = field(default_factory=dict)
    _by_task: dict[int, int] = field(default_factory=dict)  # task id → its in-flight execution id
    loaded: bool = False

    async def load(self, conn: AsyncConnection) -> None:
        self.attempts = {(r.task_id, r.stage): int(r.attempt) for r in await conn.execute(_ATTEMPTS)}
        self.loaded = True

    def next_attempt(self, task_id: int, stage: str) -> int | None:
        """The attempt a new execution of `task_id` at `stage` gets; None when not known."""
        if not self.loaded:
            return None
        return self.attempts.get((task_id, stage), 0) + 1

    def started(self, entry: Inflight) -> None:
        eid = entry.job.job_id
        self.forget_task(entry.task.id)
        self.inflight[eid] = entry
        self._by_task[entry.task.id] = eid
        key = (entry.task.id, entry.job.stage)
        self.attempts[key] = max(self.attempts.get(key, 0), entry.job.attempt)

    def attempted(self, task_id: int, stage: str, attempt: int) -> None:
        key = (task_id, stage)
        self.attempts[key] = max(self.attempts.get(key, 0), attempt)

    def ended(self, execution_id: int) -> None:
        entry = self.inflight.pop(execution_id, None)
        if entry is not None and self._by_task.get(entry.task.id) == execution_id:
            del self._by_task[entry.task.id]

    def forget_task_of(self, execution_id: int) -> None:
        entry = self.inflight.get(execution_id)
        if entry is not None:
            self.forget_task(entry.task.id)

    def forget_task(self, task_id: int) -> None:
        """A human command (or anything but a hop) touched the task: its cached job is stale. The
        jobs of its children too: they carry their parent's feedback."""
        eid = self._by_task.pop(task_id, None)
        if eid is not None:
            self.inflight.pop(eid, None)
        for child in [e for e in self.inflight.values() if e.task.parent_id == task_id]:
            self.ended(child.job.job_id)
