"""Dispatch: start queued tasks as jobs while stages and projects have free slots and nothing is paused.

Passes are coalesced: `kick()` asks for one, and however many kicks arrive while a pass runs, one more
pass follows. Each pass is one transaction under a transaction-level advisory lock (so two orchestrator
processes never count the same free slot twice); it reads only candidate rows (LIMIT = free slots per
stage, locked FOR UPDATE SKIP LOCKED) with everything their jobs need in the same query.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Collection
from typing import Any

from sqlalchemy import JSON, DateTime, text
from sqlalchemy.dialects.postgresql import JSONB
from wf_common.config import GitConfig
from wf_common.events import ExecutionDispatched, TaskStateChanged
from wf_common.jobs import BugRef, FeedbackRef, Job, ProjectRef, TaskRef, idempotency_key, utcnow
from wf_common.states import TaskState

from wf_orchestrator import budgets
from wf_orchestrator.branches.worktrees import job_worktree
from wf_orchestrator.memory import Inflight
from wf_orchestrator.outbox import Stored
from wf_orchestrator.pipeline import selection
from wf_orchestrator.pipeline.model import Candidate, Load
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.rows import TaskRow
from wf_orchestrator.tasks.sql import ACTIVE_JOBS
from wf_orchestrator.uow import Runner, UnitOfWork

log = logging.getLogger(__name__)

DISPATCH_LOCK = 0x77665F64

# Jobs running now per project and stage (tasks.sql.ACTIVE_JOBS: through the small partial index of
# active executions, not the tasks table, which grows with every task ever made).
_LOAD = text(
    "SELECT a.project_id, a.stage AS current_stage, count(*) AS n"
    " FROM (ACTIVE_JOBS) a WHERE a.project_id IS NOT NULL GROUP BY 1, 2".replace("ACTIVE_JOBS", ACTIVE_JOBS)
)

# One row per task to start, with an id for its execution, its previous attempts at the stage, its
# last handoff, its feedback (and its parent's) and its open bugs: the subqueries run for the returned
# rows only. Execution ids come from the orchestrator's id pool (wf_orchestrator.ids).
_CANDIDATES = text(
    """
SELECT t.*,
  (SELECT coalesce(max(e.attempt), 0) FROM executions e
    WHERE e.task_id = t.id AND e.stage = t.current_stage) AS prev_attempts,
  h.id AS handoff_id, h.payload AS handoff,
  (SELECT coalesce(json_agg(json_build_object('text', f.text, 'actor', f.actor, 'at', f.created_at,
                                             'file', f.file, 'line', f.line)
                            ORDER BY f.created_at, f.id), '[]'::json)
     FROM feedback f WHERE f.task_id = t.id OR f.task_id = t.parent_id) AS feedback,
  (SELECT coalesce(json_agg(json_build_object('key', b.bug_key, 'title', b.title,
                                              'description', b.description, 'source_stage', b.source_stage,
                                              'reproduction', b.reproduction) ORDER BY b.id), '[]'::json)
     FROM bugs b WHERE b.task_id = t.id AND b.status = 'open') AS bugs
FROM unnest(CAST(:stages AS varchar[]), CAST(:limits AS integer[])) AS s(stage, n)
CROSS JOIN LATERAL (
  SELECT * FROM tasks t0
  WHERE t0.current_stage = s.stage AND t0.state = 'queued'
    AND t0.project_id <> ALL(CAST(:full AS integer[]))
    AND t0.id <> ALL(CAST(:taken AS integer[]))
    AND NOT EXISTS (SELECT 1 FROM tasks b WHERE b.id = ANY(t0.blocked_by) AND b.state <> 'done')
  ORDER BY t0.priority DESC, t0.created_at, t0.id
  LIMIT s.n
  FOR UPDATE OF t0 SKIP LOCKED
) t
LEFT JOIN LATERAL (SELECT id, payload FROM handoffs WHERE task_id = t.id ORDER BY id DESC LIMIT 1) h ON true
"""
).columns(
    acceptance_criteria=JSONB,
    handoff=JSONB,
    feedback=JSON,
    bugs=JSON,
    created_at=DateTime(timezone=True),
    updated_at=DateTime(timezone=True),
    completed_at=DateTime(timezone=True),
)

# Everything a pass writes, in one round trip: the executions, the tasks' new state, the handoffs'
# link to the execution that consumes them, and the outbox rows (foreign keys are checked at the end
# of the statement, when the executions exist).
_START = text(
    """
WITH v AS (
  SELECT * FROM unnest(CAST(:eids AS integer[]), CAST(:tids AS integer[]), CAST(:agent_ids AS integer[]),
                       CAST(:stages AS varchar[]), CAST(:attempts AS integer[]), CAST(:keys AS varchar[]),
                       CAST(:cwds AS text[]), CAST(:hids AS integer[]))
    AS v(eid, tid, agent_id, stage, attempt, key, cwd, hid)
), ins AS (
  INSERT INTO executions (id, task_id, agent_id, stage, attempt, idempotency_key, status, cwd, queued_at,
                          incoming_handoff)
  SELECT v.eid, v.tid, v.agent_id, v.stage, v.attempt, v.key, 'pending', v.cwd, :now, h.payload
  FROM v LEFT JOIN handoffs h ON h.id = v.hid
  RETURNING id
), upd AS (
  UPDATE tasks SET state = 'running', current_execution_id = v.eid, status_reason = NULL, updated_at = :now
  FROM v WHERE tasks.id = v.tid
  RETURNING tasks.id
), lnk AS (
  UPDATE handoffs SET to_execution_id = v.eid FROM v WHERE handoffs.id = v.hid
  RETURNING handoffs.id
)
INSERT INTO outbox (subject, payload, msg_id)
SELECT * FROM unnest(CAST(:subjects AS text[]), CAST(:payloads AS bytea[]), CAST(:msg_ids AS varchar[]))
RETURNING id, msg_id
"""
)


# Whether a pass can start anything: most kicks come from a slot that freed (a task done, at a gate)
# with nothing queued for it, and a pass's transaction, lock and two reads would find nothing.
_ANY_QUEUED = text(
    "SELECT EXISTS (SELECT 1 FROM tasks WHERE current_stage = ANY(CAST(:stages AS varchar[]))"
    " AND state = 'queued')"
)

_NEXT_EXECUTION_ID = text("SELECT nextval(pg_get_serial_sequence('executions', 'id'))")


class Dispatcher:
    def __init__(
        self,
        runner: Runner,
        ctx: Context,
        *,
        paused: Callable[[], bool],
        batch: int = 200,
        held: Callable[[], tuple[Collection[int], Collection[int]]] | None = None,
        git: GitConfig | None = None,
    ) -> None:
        self._runner = runner
        self._ctx = ctx
        self._paused = paused
        # Paused projects and tasks (ids): their queued tasks wait (wf_orchestrator.branches.scopes).
        self._held = held or (lambda: ((), ()))
        self._git = git or GitConfig()
        self._batch = batch
        self._wake = asyncio.Event()
        self._busy = False
        self.passes = 0

    def kick(self) -> None:
        self._wake.set()

    async def within(self, uow: UnitOfWork) -> bool:
        """Run a pass inside the caller's transaction (a result or command that just queued a task),
        when no other pass is running or due: the next job then leaves with the commit that made it
        ready, one transaction and one wake-up sooner. Under load this declines and the dispatcher's
        own passes batch the work. True when it ran a pass."""
        if self._busy or self._wake.is_set() or self._paused():
            return False
        # try_: never wait for another pass while holding the caller's row locks.
        if not await uow.conn.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": DISPATCH_LOCK}):
            return False
        self.passes += 1
        await self._locked_pass(uow)
        return True

    async def run(self, stop: asyncio.Event) -> None:
        stopping = asyncio.create_task(stop.wait())
        try:
            while not stop.is_set():
                waking = asyncio.create_task(self._wake.wait())
                await asyncio.wait({waking, stopping}, return_when=asyncio.FIRST_COMPLETED)
                waking.cancel()
                if stop.is_set():
                    break
                self._wake.clear()
                try:
                    started = await self.dispatch_once()
                except Exception:
                    log.exception("dispatch pass failed; trying again shortly")
                    await asyncio.sleep(0.5)
                    self._wake.set()
                    continue
                if started >= self._batch:
                    self._wake.set()  # there may be more
        finally:
            stopping.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await stopping

    async def dispatch_once(self) -> int:
        """One pass; returns how many jobs it started."""
        if self._paused():
            return 0
        # Read outside the pass: a task queued after this read was queued by a writer that kicks
        # again, and a kick during this pass makes another one follow.
        async with self._runner.engine.connect() as conn:
            if not await conn.scalar(_ANY_QUEUED, {"stages": self._ctx.pipeline.agent_stages}):
                return 0
        self.passes += 1
        self._busy = True
        lock = self._runner.dispatch_lock
        await lock.acquire()  # held through the commit, released before the publication
        held = [True]

        def release() -> None:
            if held[0]:  # once: after the commit, or in the finally when it did not commit
                held[0] = False
                lock.release()

        try:
            return await self._runner.run(lambda uow: self._pass(uow, release))
        finally:
            release()
            self._busy = False

    async def _pass(self, uow: UnitOfWork, release: Callable[[], None] | None = None) -> int:
        if release is not None:
            uow.after_commit.append(release)
        await uow.conn.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": DISPATCH_LOCK})
        if self._paused():  # the pause may have come while we waited for the lock
            return 0
        return await self._locked_pass(uow)

    async def _locked_pass(self, uow: UnitOfWork) -> int:
        conn = uow.conn
        pipeline = self._ctx.pipeline
        by_stage: dict[str, int] = {}
        by_project: dict[int, int] = {}
        for r in await conn.execute(_LOAD):
            by_stage[r.current_stage] = by_stage.get(r.current_stage, 0) + r.n
            by_project[r.project_id] = by_project.get(r.project_id, 0) + r.n
        load = Load(by_stage, by_project)
        chosen: list[dict[str, Any]] = []
        taken: list[int] = []
        held_projects, held_tasks = self._held()
        for _ in range(20):
            free = selection.free_slots(pipeline, load)
            budget = self._batch - len(chosen)
            free = {s: min(n, budget) for s, n in free.items()}
            if not free or budget <= 0:
                break
            rows = {
                r["id"]: dict(r)
                for r in (
                    await conn.execute(
                        _CANDIDATES,
                        {
                            "stages": list(free),
                            "limits": list(free.values()),
                            "full": sorted(
                                selection.full_projects(load, pipeline.max_parallel_per_project)
                                | set(held_projects)
                            ),
                            "taken": [*taken, *held_tasks],
                        },
                    )
                ).mappings()
            }
            if not rows:
                break
            candidates = [
                Candidate(
                    r["id"], r["project_id"], r["current_stage"], r["priority"], (r["created_at"], r["id"])
                )
                for r in rows.values()
            ]
            picked = selection.select(pipeline, candidates, free, load)
            chosen.extend(rows[c.task_id] for c in picked)
            taken.extend(c.task_id for c in picked)
            load = selection.after(load, picked)
            if len(picked) == len(rows):
                break  # nothing was skipped for a full project: no other candidates can fit
        chosen = await budgets.hold_over_budget(uow, self._ctx, chosen)  # cost.budgets: stop new work
        if chosen:
            await self._start(uow, chosen)
        return len(chosen)

    async def _start(self, uow: UnitOfWork, chosen: list[dict[str, Any]]) -> None:
        conn, ctx, pipeline = uow.conn, self._ctx, self._ctx.pipeline
        now = utcnow()
        await ctx.ensure_projects(conn, {r["project_id"] for r in chosen})
        await ctx.ensure_keys(conn, [i for r in chosen for i in (*r["blocked_by"], r["parent_id"])])
        rows: dict[str, list[Any]] = {
            k: [] for k in ("eids", "tids", "agent_ids", "stages", "attempts", "keys", "cwds", "hids")
        }
        started: list[Inflight] = []
        for r in chosen:
            stage = pipeline.stage(r["current_stage"])
            if not (stage is not None and stage.agent is not None):
                raise RuntimeError("invariant broken: stage is not None and stage.agent is not None")
            project = ctx.projects[r["project_id"]]
            eid = await ctx.ids.execution() if ctx.ids else int(await conn.scalar(_NEXT_EXECUTION_ID) or 0)
            attempt = int(r["prev_attempts"]) + 1
            key = idempotency_key(project.slug, r["task_key"], stage.name, attempt)
            for col, value in zip(
                rows,
                (
                    eid,
                    r["id"],
                    ctx.agent_ids[stage.agent],
                    stage.name,
                    attempt,
                    key,
                    project.workspace,
                    r["handoff_id"],
                ),
                strict=True,
            ):
                rows[col].append(value)
            task = TaskRow.of(
                {
                    **r,
                    "state": TaskState.RUNNING.value,
                    "current_execution_id": eid,
                    "status_reason": None,
                    "updated_at": now,
                }
            )
            snap = ctx.snapshot_cached(task)
            common = {"project": project.slug, "task_key": task.task_key}

            uow.emit(ExecutionDispatched(**common, execution_id=eid, stage=stage.name, attempt=attempt))
            uow.emit(
                TaskStateChanged(
                    **common, task=snap, from_state=TaskState.QUEUED.value, to_state=TaskState.RUNNING.value
                )
            )
            job = Job(
                job_id=eid,
                idempotency_key=key,
                stage=stage.name,
                role=stage.agent,
                attempt=attempt,
                project=ProjectRef(
                    slug=project.slug,
                    name=project.name,
                    workspace=project.workspace,
                    test_command=project.test_command,
                ),
                task=TaskRef(
                    key=task.task_key,
                    title=task.title,
                    description=task.description,
                    acceptance_criteria=task.acceptance_criteria,
                    priority=task.priority,
                    parent_key=snap.parent,
                ),
                idea=task.description if task.is_idea else None,
                feedback=[FeedbackRef.model_validate(f) for f in r["feedback"]],
                bugs=[BugRef.model_validate(b) for b in r["bugs"]],
                handoff=r["handoff"] or {},
                max_turns=pipeline.max_turns,
                timeout_seconds=stage.timeout_seconds,
                schema_retries=pipeline.schema_retries,
                issued_at=now,
                worktree=job_worktree(
                    self._git, project.workspace, project.slug, task.task_key, task.is_idea
                ),
            )
            uow.send_job(job)
            started.append(Inflight(task, job, project))
        memory = ctx.memory

        def remember() -> None:
            for entry in started:
                memory.started(entry)

        uow.after_commit.append(remember)
        messages, uow.messages = uow.messages, []
        stored = await conn.execute(
            _START,
            {
                **rows,
                "now": now,
                "subjects": [m.subject for m in messages],
                "payloads": [m.payload for m in messages],
                "msg_ids": [m.msg_id for m in messages],
            },
        )
        ids = {r.msg_id: r.id for r in stored}
        uow.stored.extend(Stored(ids[m.msg_id], m) for m in messages)
