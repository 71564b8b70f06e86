"""What the active orchestrator keeps in memory, knowing it is alone (it holds the lease):

- `inflight`: every job this process dispatched and that has not ended — the task row as the dispatch
  left it, the Job, the project — so a Result can be turned into the next Job without reading anything
  (wf_orchestrator.hop);
- `attempts`: the highest attempt per (task, stage), loaded at start for unfinished tasks and kept up
  to date by the only two places that insert executions (the dispatcher and the hop);
- `jobs`: an upper bound of the jobs running now per stage and per project (`jobs_in_stage`,
  `jobs_in_project`): every execution that counts as one (tasks.sql.ACTIVE_JOBS) or may count again
  without a new dispatch (paused), loaded at start and again at each sweep (under the dispatch lock),
  added to by the dispatcher and the hop, taken from where an execution surely ended (a Result
  applied, an execution failed). An end it misses (a human cancelled the task) only leaves the bound
  too high until the next sweep; it is never too low, so the hop can skip its WIP counts when the
  bound leaves room, and counts in SQL when it does not.

It is updated by the code that writes, after its commit (UnitOfWork.after_commit), and it is only ever
a prediction: every statement that relies on it is guarded in SQL, and a failed guard falls back to
the locked path, which forgets what it knew of that task.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncConnection
from wf_common.jobs import Job

from wf_orchestrator.tasks.rows import ProjectRow, TaskRow

_ATTEMPTS = text(
    "SELECT e.task_id, e.stage, max(e.attempt) AS attempt FROM executions e"
    " JOIN tasks t ON t.id = e.task_id WHERE t.state NOT IN ('done', 'cancelled') GROUP BY 1, 2"
)


# Superset of tasks.sql.ACTIVE_JOBS: also paused executions and tasks not running now (paused), which
# may count again without a new dispatch; never an execution its task no longer points at.
_JOBS = text(
    "SELECT e.id, e.stage, t.project_id FROM executions e JOIN tasks t ON t.current_execution_id = e.id"
    " WHERE e.status IN ('pending', 'running', 'paused')"
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
    _by_parent: dict[int, set[int]] = field(default_factory=dict)  # parent task id → children's executions
    jobs: dict[int, tuple[str, int]] = field(default_factory=dict)  # execution id → (stage, project id)
    _in_stage: Counter[str] = field(default_factory=Counter)
    _in_project: Counter[int] = field(default_factory=Counter)
    loaded: bool = False

    async def load(self, conn: AsyncConnection) -> None:
        self.attempts = {(r.task_id, r.stage): int(r.attempt) for r in await conn.execute(_ATTEMPTS)}
        await self.load_jobs(conn)
        self.loaded = True

    async def load_jobs(self, conn: AsyncConnection) -> None:
        """Read the jobs running now again (the caller holds the dispatch lock: nothing starts one
        meanwhile)."""
        self.jobs = {r.id: (r.stage, r.project_id) for r in await conn.execute(_JOBS)}
        self._in_stage = Counter(stage for stage, _ in self.jobs.values())
        self._in_project = Counter(project for _, project in self.jobs.values())

    def jobs_in_stage(self, stage: str) -> int | None:
        """At least as many as the jobs running now in `stage`; None when not loaded."""
        return self._in_stage[stage] if self.loaded else None

    def jobs_in_project(self, project_id: int) -> int | None:
        """At least as many as the jobs running now in the project; None when not loaded."""
        return self._in_project[project_id] if self.loaded else None

    def _job_started(self, execution_id: int, stage: str, project_id: int) -> None:
        if execution_id not in self.jobs:
            self.jobs[execution_id] = (stage, project_id)
            self._in_stage[stage] += 1
            self._in_project[project_id] += 1

    def _job_ended(self, execution_id: int) -> None:
        where = self.jobs.pop(execution_id, None)
        if where is not None:
            self._in_stage[where[0]] -= 1
            self._in_project[where[1]] -= 1

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
        if entry.task.parent_id is not None:
            self._by_parent.setdefault(entry.task.parent_id, set()).add(eid)
        key = (entry.task.id, entry.job.stage)
        self.attempts[key] = max(self.attempts.get(key, 0), entry.job.attempt)
        self._job_started(eid, entry.job.stage, entry.task.project_id)

    def attempted(self, task_id: int, stage: str, attempt: int) -> None:
        key = (task_id, stage)
        self.attempts[key] = max(self.attempts.get(key, 0), attempt)

    def ended(self, execution_id: int) -> None:
        """The execution ended (committed): its job no longer runs."""
        self._job_ended(execution_id)
        self._drop(execution_id)

    def _drop(self, execution_id: int) -> None:
        entry = self.inflight.pop(execution_id, None)
        if entry is None:
            return
        if self._by_task.get(entry.task.id) == execution_id:
            del self._by_task[entry.task.id]
        parent = entry.task.parent_id
        if parent is not None and (siblings := self._by_parent.get(parent)) is not None:
            siblings.discard(execution_id)
            if not siblings:
                del self._by_parent[parent]

    def forget_task_of(self, execution_id: int) -> None:
        entry = self.inflight.get(execution_id)
        if entry is not None:
            self.forget_task(entry.task.id)

    def forget_task(self, task_id: int) -> None:
        """A human command (or anything but a hop) touched the task: its cached job is stale. The
        jobs of its children too: they carry their parent's feedback."""
        eid = self._by_task.get(task_id)
        if eid is not None:
            self._drop(eid)
        for child in list(self._by_parent.get(task_id, ())):
            self._drop(child)  # forgotten, not ended: its job still runs
