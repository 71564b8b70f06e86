"""The hop: a Result that moves its task straight on to the next agent stage, applied as ONE guarded
data-modifying statement on an autocommit connection, with the next Job decided from memory.

    applied = await hop.try_apply(result)   # False: not a plain hop, or a guard failed → locked path

A plain hop is a result whose decision (the same pure `machine.on_result` the locked path uses) moves
the task to the next stage, queued, with nothing else to write: no bug, no PM breakdown, no gate, no
stage bugs to mark fixed, and the job was dispatched by this process (so its task row, Job and the
attempt counts are in memory, wf_orchestrator.memory). A plain arrival at a gate (the deploy gate, or
a gated agent stage asking for approval) is the same with no next job: the `GATE` statement leaves
the task awaiting approval with the handoff that asks for it, and the events say so (approval.requested
among them). The `HOP` statement, in one round trip:

- updates the task where it still points at that execution, is running in that stage and was not
  touched since (updated_at), and where the next stage and the project have a free slot for it and
  for every task already queued for one (so taking it skips nobody): these are the guards;
- ends the execution where it is still active (only if the task guard passed);
- inserts the handoff, the next execution, and the outbox rows (events and the next Job);
- aborts as a whole if the two updates disagree (1/0), so it is all or nothing.

If a guard fails (a human command raced it, the stage is full, the configuration moved) nothing is
written, memory forgets the task and the caller takes the locked path, which re-reads everything.
The next Job is published first; the caller acks the Result after the Job's ack.

The statement runs on one connection the hop keeps (`HopConnection`), prepared once, through asyncpg
itself: no pool checkout and check-in, no SQL compilation per hop (they were more than half of the
hop's time in the database; docs/performance.md). Hops are written one at a time under the dispatch
lock, so one connection is all they need.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, cast

import asyncpg
from sqlalchemy import DateTime, bindparam, text
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine
from wf_common.events import (
    ApprovalRequested,
    ExecutionDispatched,
    TaskMoved,
    TaskStateChanged,
    _Event,
)
from wf_common.jobs import Job, Result, idempotency_key, utcnow
from wf_common.states import ExecutionStatus, TaskState
from wf_common.subjects import job_subject

from wf_orchestrator.memory import Inflight
from wf_orchestrator.outbox import Outbox, Outgoing, Stored, jobs_first
from wf_orchestrator.pipeline import machine
from wf_orchestrator.pipeline import results as result_facts
from wf_orchestrator.pipeline.model import Decision
from wf_orchestrator.tasks.context import Context
from wf_orchestrator.tasks.sql import ACTIVE_JOBS

log = logging.getLogger(__name__)

# Shared by both statements: the execution ends where it is still active, only if the task's guard
# passed (t), and the outbox rows go in with it; `queued_behind` counts the queued tasks that the slot
# it frees may let start (the caller then kicks the dispatcher).
_END_AND_OUTBOX = """
ex AS (
  UPDATE executions SET status = 'completed', result_status = :result_status,
         result_summary = :result_summary, result_details = :result_details, usage = :usage,
         started_at = coalesce(:started_at, started_at),
         completed_at = :completed_at, runner_id = coalesce(:runner_id, runner_id),
         outgoing_handoff = :payload
  WHERE id = :eid AND status IN ('pending', 'running', 'paused') AND idempotency_key = :key
    AND EXISTS (SELECT 1 FROM t)
  RETURNING id
), o AS (
  INSERT INTO outbox (subject, payload, msg_id)
  SELECT s, p, m
  FROM unnest(CAST(:subjects AS text[]), CAST(:payloads AS bytea[]), CAST(:msg_ids AS varchar[]))
       AS u(s, p, m)
  WHERE EXISTS (SELECT 1 FROM t)
  RETURNING id, msg_id
)
SELECT CASE WHEN (SELECT count(*) FROM t) = (SELECT count(*) FROM ex) THEN (SELECT count(*) FROM t)
            -- not a constant, so it is evaluated only when the two disagree: then all is rolled back
            ELSE 1 / ((SELECT count(*) FROM ex) * 0) END AS moved,
       (SELECT coalesce(json_object_agg(o.msg_id, o.id), '{}'::json) FROM o) AS outbox_ids,
       QUEUED_BEHIND AS queued_behind
"""
# The guard every statement's task update has: the task still points at the execution, runs in its
# stage, and nothing touched it since the dispatch (updated_at).
_STILL_RUNNING = """id = :tid AND current_execution_id = :eid AND state = 'running' AND current_stage = :s1
    AND updated_at = :seen"""

_BIND_TYPES = (
    bindparam("payload", type_=JSONB),
    bindparam("result_details", type_=JSONB),
    bindparam("usage", type_=JSONB),
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("seen", type_=DateTime(timezone=True)),
    bindparam("started_at", type_=DateTime(timezone=True)),
    bindparam("completed_at", type_=DateTime(timezone=True)),
)

# To the next agent stage: the task runs there at once, with a new execution.
HOP = text(
    """
WITH t AS (
  UPDATE tasks SET current_stage = :s2, state = 'running', current_execution_id = :eid2,
         status_reason = NULL, updated_at = :now
  WHERE STILL_RUNNING
    -- A slot for this task and for every task already queued for one, so taking it skips nobody.
    -- The jobs running now are counted only when memory's upper bound of them leaves no room (the
    -- count visits every active execution; an OR evaluates its right side only when the left fails).
    AND (CAST(:stage_jobs AS bigint) + (SELECT count(*) FROM tasks q WHERE q.current_stage = :s2
                                          AND q.state = 'queued') < :wip
         OR (SELECT count(*) FROM (ACTIVE_JOBS) a WHERE a.stage = :s2 AND a.project_id IS NOT NULL)
            + (SELECT count(*) FROM tasks q WHERE q.current_stage = :s2 AND q.state = 'queued') < :wip)
    AND (CAST(:project_jobs AS bigint) + (SELECT count(*) FROM tasks q
         WHERE q.current_stage = ANY(CAST(:agent_stages AS varchar[])) AND q.state = 'queued'
           AND q.project_id = :pid) <= :per_project
         OR (SELECT count(*) FROM (ACTIVE_JOBS) a WHERE a.project_id = :pid)
            + (SELECT count(*) FROM tasks q
               WHERE q.current_stage = ANY(CAST(:agent_stages AS varchar[])) AND q.state = 'queued'
                 AND q.project_id = :pid) <= :per_project)
    AND NOT EXISTS (SELECT 1 FROM executions p
                    WHERE p.task_id = :tid AND p.stage = :s2 AND p.attempt >= :attempt)
  RETURNING id
), h AS (
  INSERT INTO handoffs (id, task_id, from_execution_id, to_execution_id, from_stage, to_stage, payload,
                        notes, actor, requires_approval)
  SELECT :hid, :tid, :eid, :eid2, :s1, :s2, :payload, :notes, :actor, false FROM t
  RETURNING id
), e2 AS (
  INSERT INTO executions (id, task_id, agent_id, stage, attempt, idempotency_key, status, cwd, queued_at,
                          incoming_handoff)
  SELECT :eid2, :tid, :agent_id, :s2, :attempt, :key2, 'pending', :cwd, :now, :payload FROM t
  RETURNING id
), END_AND_OUTBOX""".replace("ACTIVE_JOBS", ACTIVE_JOBS)
    .replace("STILL_RUNNING", _STILL_RUNNING)
    .replace("END_AND_OUTBOX", _END_AND_OUTBOX)
    # It still runs in the project: only its stage's slot is freed.
    .replace(
        "QUEUED_BEHIND", "(SELECT count(*) FROM tasks q WHERE q.current_stage = :s1 AND q.state = 'queued')"
    )
).bindparams(*_BIND_TYPES)

# To a human gate (the deploy gate, or a gated agent stage's approval): the task waits there with the
# handoff that asks for the approval; nothing is dispatched, so no slot is counted.
GATE = text(
    """
WITH t AS (
  UPDATE tasks SET current_stage = :s2, state = 'awaiting_approval', current_execution_id = NULL,
         status_reason = NULL, updated_at = :now
  WHERE STILL_RUNNING
  RETURNING id
), h AS (
  INSERT INTO handoffs (id, task_id, from_execution_id, from_stage, to_stage, payload, notes, actor,
                        requires_approval)
  SELECT :hid, :tid, :eid, :s1, :h_to, :payload, :notes, :actor, true FROM t
  RETURNING id
), END_AND_OUTBOX""".replace("STILL_RUNNING", _STILL_RUNNING)
    .replace("END_AND_OUTBOX", _END_AND_OUTBOX)
    # It stops running: its stage's slot and its project's are freed.
    .replace(
        "QUEUED_BEHIND",
        """(SELECT count(*) FROM tasks q
            WHERE q.current_stage = ANY(CAST(:agent_stages AS varchar[])) AND q.state = 'queued'
              AND (q.current_stage = :s1 OR q.project_id = :pid))""",
    )
).bindparams(*_BIND_TYPES)

STATEMENTS = {"hop": HOP, "gate": GATE}


# The hop connection's session. No bitmap scans: the WIP guards count the active executions through
# their partial index, whose entries for finished executions stay until a vacuum (status is indexed,
# so ending an execution is no HOT update). An index scan marks the dead entries it meets as such, so
# the next count skips them; a bitmap scan, which the planner picks once it expects a few dozen
# active jobs, visits every one of them again, each hop: ~4,000 entries and 0.6 to 4 ms per count within
# a minute of a busy board (tests/orchestrator/test_load_query.py). Nothing else runs on it.
HOP_SESSION = {"enable_bitmapscan": "off"}


class HopStatementFailed(Exception):
    """The statement failed in the database (nothing was written): the locked path takes the Result."""


@dataclass(frozen=True, slots=True)
class _Compiled:
    sql: str
    names: tuple[str, ...]  # the positional parameters, in order
    process: dict[str, Callable[[Any], Any]]  # JSONB values to the text the connection's codec sends

    def args(self, params: dict[str, Any]) -> list[Any]:
        """Positional, each through SQLAlchemy's processor where it has one (None to JSON null too)."""
        return [self.process[n](params[n]) if n in self.process else params[n] for n in self.names]


class HopConnection:
    """The hop's statements (STATEMENTS), prepared once on a connection kept for them (autocommit; a
    batch is one transaction). A lost connection is dropped and raises ConnectionResetError (the
    Result is nak'ed and comes back); the next hop opens a new one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._compiled: dict[str, _Compiled] = {}
        for kind, statement in STATEMENTS.items():
            compiled = statement.compile(dialect=engine.dialect)
            names = tuple(compiled.positiontup or ())
            processors = compiled._bind_processors
            process = {n: cast(Callable[[Any], Any], processors[n]) for n in names if n in processors}
            self._compiled[kind] = _Compiled(compiled.string, names, process)
        self._held: AsyncConnection | None = None
        self._prepared: dict[str, Any] = {}  # kind → asyncpg.prepared_stmt.PreparedStatement
        self._driver: Any = None  # asyncpg.Connection

    async def _open(self) -> None:
        if self._driver is not None:
            return
        held = await self._engine.connect()
        try:
            held = await held.execution_options(isolation_level="AUTOCOMMIT")
            raw = await held.get_raw_connection()
            driver: Any = raw.driver_connection
            for name, value in HOP_SESSION.items():
                await driver.execute(f"SET {name} = {value}")
            self._prepared = {k: await driver.prepare(c.sql) for k, c in self._compiled.items()}
        except BaseException:
            self._prepared = {}
            await held.invalidate()
            await held.close()
            raise
        self._held, self._driver = held, driver

    async def _fetch(self, kind: str, params: dict[str, Any]) -> dict[str, Any]:
        return dict(await self._prepared[kind].fetchrow(*self._compiled[kind].args(params)))

    async def run(
        self, batch: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[list[dict[str, Any] | HopStatementFailed], bool]:
        """The statement of each (kind, params) of `batch`, and whether they were one transaction:
        alone, autocommit; more, in one transaction, falling back to one at a time when one of them
        fails (then nothing of the transaction was written)."""
        lost: BaseException
        try:
            return await self._run(batch)
        except asyncpg.PostgresError as err:
            if not _lost(err):  # the statements could not be prepared: the locked path takes them all
                return [HopStatementFailed(f"{type(err).__name__}: {err}") for _ in batch], False
            lost = err
        except (TimeoutError, asyncpg.InterfaceError, OSError) as err:
            lost = err
        await self.close()
        what = type(lost).__name__
        raise ConnectionResetError(f"the hop's database connection was lost ({what})") from lost

    async def _run(
        self, batch: Sequence[tuple[str, dict[str, Any]]]
    ) -> tuple[list[dict[str, Any] | HopStatementFailed], bool]:
        await self._open()
        if len(batch) > 1:
            try:
                async with self._driver.transaction():
                    return [await self._fetch(kind, p) for kind, p in batch], True
            except asyncpg.PostgresError as err:
                if _lost(err):
                    raise
                # one at a time below, each its own statement
        rows: list[dict[str, Any] | HopStatementFailed] = []
        for kind, p in batch:
            try:
                rows.append(await self._fetch(kind, p))
            except asyncpg.PostgresError as err:
                if _lost(err):
                    raise
                rows.append(HopStatementFailed(f"{type(err).__name__}: {err}"))
        return rows, False

    async def close(self) -> None:
        """Drop the connection (never back to the pool: it has HOP_SESSION's settings)."""
        held, self._held, self._prepared, self._driver = self._held, None, {}, None
        if held is None:
            return
        try:
            await held.invalidate()
        finally:
            await held.close()


def _lost(err: asyncpg.PostgresError) -> bool:
    """A server error that ends the connection, not the statement (08: connection, 57P: shutdown)."""
    return str(getattr(err, "sqlstate", "") or "").startswith(("08", "57P"))


@dataclass
class Messages:
    """What the hop publishes, in order; the same encoding as UnitOfWork's."""

    messages: list[Outgoing] = field(default_factory=list)

    def emit(self, event: _Event) -> None:
        self.messages.append(Outgoing(event.subject(), event.model_dump_json().encode(), event.id))

    def send_job(self, job: Job) -> None:
        self.messages.append(
            Outgoing(job_subject(job.stage), job.model_dump_json().encode(), job.idempotency_key)
        )


class Hop:
    def __init__(
        self,
        engine: AsyncEngine,
        outbox: Outbox,
        ctx: Context,
        lock: asyncio.Lock,
        *,
        held: Callable[[], tuple[Collection[int], Collection[int]]] | None = None,
        kick: Callable[[], None] = lambda: None,
    ) -> None:
        self._held = held or (lambda: ((), ()))  # paused projects and tasks: the locked path decides
        self._connection = HopConnection(engine)
        self._lock = lock  # the dispatch lock: WIP and project slots are counted by one writer at a time
        self._outbox = outbox
        self._ctx = ctx
        self.applied = 0
        self.gates = 0  # of them, arrivals at a gate (the GATE statement)
        self.declined = 0
        self.guard_failed = 0
        # Called once a write freed a slot a queued task may take (tasks are queued in the stage a
        # hop left, or in the stage or the project of a task that stopped at a gate): the dispatcher's.
        self._kick = kick
        self.batches = 0  # transactions that applied more than one hop
        self._queue: list[tuple[_Pending, asyncio.Future[bool]]] = []

    async def close(self) -> None:
        """Give the statement's connection back (before the engine is disposed)."""
        async with self._lock:
            await self._connection.close()

    def plan(self, result: Result, paused: bool) -> tuple[Inflight, Decision, str] | None:
        """The decision and the statement (STATEMENTS' kind) that applies it, when this result is a
        plain hop or a plain arrival at a gate."""
        ctx = self._ctx
        entry = ctx.memory.inflight.get(result.job_id)
        if entry is None or entry.job.idempotency_key != result.idempotency_key or paused:
            return None
        if ctx.budgets.is_set():
            return None  # budgets are checked where the dispatcher starts work (wf_orchestrator.budgets)
        held_projects, held_tasks = self._held()
        if entry.task.project_id in held_projects or entry.task.id in held_tasks:
            return None
        stage = ctx.pipeline.stage(entry.job.stage)
        if stage is None or any(b.source_stage == stage.name for b in entry.job.bugs):
            return None
        breakdown = tuple(result.breakdown.tasks) if result.breakdown else ()
        d = machine.on_result(
            ctx.pipeline, entry.task.facts(blockers_done=True), result_facts.facts(result), breakdown
        )
        if not (
            d.handoff is not None
            and d.bug is None
            and not d.children
            and not d.completed
            and d.execution_status == ExecutionStatus.COMPLETED
            and d.rework_count in (None, entry.task.rework_count)
            and d.place.reason is None
        ):
            return None
        if d.approval_requested:
            gate = d.place.state == TaskState.AWAITING_APPROVAL and d.handoff.requires_approval
            return (entry, d, "gate") if gate else None
        nxt = ctx.pipeline.stage(d.place.stage)
        hop = (
            d.place.state == TaskState.QUEUED
            and d.place.stage != stage.name
            and nxt is not None
            and nxt.agent is not None
            and nxt.agent in ctx.agent_ids
            and not d.handoff.requires_approval
        )
        return (entry, d, "hop") if hop else None

    async def try_apply(self, result: Result, *, paused: bool) -> bool:
        planned = self.plan(result, paused)
        ctx, ids = self._ctx, self._ctx.ids
        if planned is None or ids is None:
            self.declined += 1
            return False
        entry, d, kind = planned
        if d.handoff is None:  # plan() checked; for the type checker
            return False
        project, task = entry.project, entry.task
        s1, s2 = entry.job.stage, d.place.stage
        hid, now = await ids.handoff(), utcnow()
        actor = f"agent:{entry.job.role}"
        payload = dict(d.handoff.payload)
        common = {"project": project.slug, "task_key": task.task_key}
        finished = result_facts.finished_event(
            result, project=project.slug, task_key=task.task_key, actor=actor, stage=s1
        )
        params: dict[str, Any] = {
            "tid": task.id,
            "eid": result.job_id,
            "hid": hid,
            "s1": s1,
            "s2": s2,
            "now": now,
            "seen": task.updated_at,
            "key": result.idempotency_key,
            **result_facts.execution_record(result),
            "payload": payload,
            "notes": d.handoff.notes or None,
            "actor": actor[:100],
            "pid": task.project_id,
            "agent_stages": ctx.pipeline.agent_stages,
        }
        messages = Messages()
        # The task as the statement leaves it (for a hop: queued, before its next job starts).
        waiting = replace(
            task,
            current_stage=s2,
            state=d.place.state.value,
            status_reason=None,
            updated_at=now,
            current_execution_id=None,
        )
        snap = ctx.snapshot_cached(waiting)
        moved = TaskMoved(
            **common,
            actor=actor,
            task=snap,
            from_stage=s1,
            to_stage=s2,
            handoff_id=hid,
            notes=d.handoff.notes,
        )
        if kind == "gate":
            # The events the locked path sends for the same change (tasks.transitions.apply).
            messages.emit(finished)
            if s2 != s1:
                messages.emit(moved)
            messages.emit(
                TaskStateChanged(
                    **common, actor=actor, task=snap, from_state=task.state, to_state=waiting.state
                )
            )
            messages.emit(
                ApprovalRequested(**common, actor=actor, stage=s2, handoff_id=hid, summary=d.handoff.notes)
            )
            params["h_to"] = d.handoff.to_stage
            return await self._apply(_Pending(kind, result.job_id, params, messages.messages, None))
        pipeline = ctx.pipeline
        nxt = pipeline.stage(s2)
        attempt = ctx.memory.next_attempt(task.id, s2)
        if nxt is None or nxt.agent is None or attempt is None:  # not loaded yet (plan checked the stage)
            return False
        eid2 = await ids.execution()
        key2 = idempotency_key(project.slug, task.task_key, s2, attempt)
        running = replace(waiting, state=TaskState.RUNNING.value, current_execution_id=eid2)
        job = _next_job(entry.job, eid2, key2, s2, nxt.agent, attempt, payload, nxt.timeout_seconds, now)
        messages.send_job(job)  # first: published first
        # The events the locked path would send for the same change (result applied, then dispatched).
        for event in (
            finished,
            moved,
            TaskStateChanged(
                **common,
                actor=actor,
                task=snap,
                from_state=task.state,
                to_state=TaskState.QUEUED.value,
            ),
            ExecutionDispatched(**common, execution_id=eid2, stage=s2, attempt=attempt),
            TaskStateChanged(
                **common,
                task=ctx.snapshot_cached(running),
                from_state=TaskState.QUEUED.value,
                to_state=TaskState.RUNNING.value,
            ),
        ):
            messages.emit(event)
        params |= {
            "eid2": eid2,
            "wip": nxt.wip_limit if nxt.wip_limit is not None else 2**31 - 1,
            "per_project": pipeline.max_parallel_per_project,
            "attempt": attempt,
            "key2": key2,
            "agent_id": ctx.agent_ids[nxt.agent],
            "cwd": project.workspace,
        }
        entry = Inflight(running, job, project)
        return await self._apply(_Pending(kind, result.job_id, params, messages.messages, entry))

    async def _apply(self, pending: _Pending) -> bool:
        """Queue the statement; whoever holds the lock applies everything queued by then in one
        transaction (one commit for many hops under load; alone, one autocommit statement). True once
        the next Job is acked by JetStream."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        pending.params |= {
            "subjects": [m.subject for m in pending.messages],
            "payloads": [m.payload for m in pending.messages],
            "msg_ids": [m.msg_id for m in pending.messages],
        }
        self._queue.append((pending, done))
        committed: list[_Written] = []
        async with self._lock:
            batch, self._queue = self._queue, []
            try:
                committed = await self._write(batch) if batch else []
            except asyncio.CancelledError:
                for _, waiting in batch:
                    waiting.cancel()
                raise
            except Exception as err:  # noqa: BLE001 - every waiter gets it (its Result is nak'ed)
                for _, waiting in batch:
                    if not waiting.done():
                        waiting.set_exception(err)
        if committed:  # published by the one that wrote them, outside the lock
            await self._publish(committed)
        return await done

    async def _write(self, batch: list[tuple[_Pending, asyncio.Future[bool]]]) -> list[_Written]:
        """The statements of `batch`, committed; memory updated. Sets the futures of hops that did not
        move (False) or failed (their error); returns the moved ones, whose futures the publisher sets."""
        seen: set[int] = set()
        unique: list[tuple[_Pending, asyncio.Future[bool]]] = []
        for item in batch:
            if item[0].execution_id in seen:  # the same Result twice: the locked path sees it applied
                item[1].set_result(False)
            else:
                seen.add(item[0].execution_id)
                unique.append(item)
        statements = self._with_job_bounds([p for p, _ in unique])
        rows, batched = await self._connection.run(statements) if unique else ([], False)
        self.batches += batched
        written: list[_Written] = []
        memory = self._ctx.memory
        freed_a_slot = False
        for (p, done), row in zip(unique, rows, strict=True):
            if isinstance(row, HopStatementFailed):
                done.set_exception(row)
            elif not row["moved"]:
                self.guard_failed += 1
                memory.forget_task_of(p.execution_id)  # the locked path re-reads it and dispatches
                done.set_result(False)
            else:
                memory.ended(p.execution_id)
                if p.entry is not None:
                    memory.started(p.entry)
                freed_a_slot = freed_a_slot or bool(row["queued_behind"])
                ids = row["outbox_ids"]
                stored = [Stored(ids[m.msg_id], m) for m in p.messages]
                written.append(_Written(stored, done, p.kind == "gate"))
        if freed_a_slot:
            self._kick()  # committed: the dispatcher's pass sees the freed slot
        return written

    def _with_job_bounds(self, batch: list[_Pending]) -> list[tuple[str, dict[str, Any]]]:
        """Each statement of `batch` with memory's upper bounds of the jobs running in its next stage
        and its project, counting the hops before it in the batch as started (memory learns of them
        after the commit); no bound known, one that never leaves room: the statement counts."""
        memory = self._ctx.memory
        in_stage: dict[str, int] = {}
        in_project: dict[int, int] = {}
        out: list[tuple[str, dict[str, Any]]] = []
        for p in batch:
            if p.kind == "hop":
                stage, project = p.params["s2"], p.params["pid"]
                known_s, known_p = memory.jobs_in_stage(stage), memory.jobs_in_project(project)
                p.params["stage_jobs"] = (
                    p.params["wip"] if known_s is None else known_s + in_stage.get(stage, 0)
                )
                p.params["project_jobs"] = (
                    p.params["per_project"] + 1 if known_p is None else known_p + in_project.get(project, 0)
                )
                in_stage[stage] = in_stage.get(stage, 0) + 1
                in_project[project] = in_project.get(project, 0) + 1
            out.append((p.kind, p.params))
        return out

    async def _publish(self, written: list[_Written]) -> None:
        """The next Jobs first, then the events (each task's in order); the futures once all are acked."""
        try:
            await self._outbox.publish(jobs_first([s for w in written for s in w.stored]), events_behind=True)
        except asyncio.CancelledError:
            for w in written:
                w.done.cancel()
            raise
        except Exception as err:  # noqa: BLE001 - the callers nak their Results; the rows stay in the outbox
            for w in written:
                w.done.set_exception(err)
            return
        self.applied += len(written)
        self.gates += sum(w.gate for w in written)
        for w in written:
            w.done.set_result(True)


@dataclass(slots=True)
class _Pending:
    kind: str  # of STATEMENTS
    execution_id: int  # the Result's
    params: dict[str, Any]
    messages: list[Outgoing]
    entry: Inflight | None  # what memory holds once it moved (None: it waits at a gate, no job runs)


@dataclass(slots=True)
class _Written:
    stored: list[Stored]
    done: asyncio.Future[bool]
    gate: bool


def _next_job(
    job: Job, eid: int, key: str, stage: str, role: str, attempt: int, handoff: dict[str, Any],
    timeout: int, now: Any,
) -> Job:  # fmt: skip
    return job.model_copy(
        update={
            "job_id": eid, "idempotency_key": key, "stage": stage, "role": role, "attempt": attempt,
            "handoff": handoff, "timeout_seconds": timeout, "issued_at": now,
        }
    )  # fmt: skip
