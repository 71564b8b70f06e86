"""The hop: a Result that moves its task straight on to the next agent stage, applied as ONE guarded
data-modifying statement on an autocommit connection, with the next Job decided from memory.

    applied = await hop.try_apply(result)   # False: not a plain hop, or a guard failed → locked path

A plain hop is a result whose decision (the same pure `machine.on_result` the locked path uses) moves
the task to the next stage, queued, with nothing else to write: no bug, no PM breakdown, no gate, no
stage bugs to mark fixed, and the job was dispatched by this process (so its task row, Job and the
attempt counts are in memory, wf_orchestrator.memory). The statement then, in one round trip:

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
from wf_common.events import ExecutionDispatched, ExecutionFinished, TaskMoved, TaskStateChanged, _Event
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

HOP = text(
    """
WITH t AS (
  UPDATE tasks SET current_stage = :s2, state = 'running', current_execution_id = :eid2,
         status_reason = NULL, updated_at = :now
  WHERE id = :tid AND current_execution_id = :eid AND state = 'running' AND current_stage = :s1
    AND updated_at = :seen
    -- A slot for this task and for every task already queued for one, so taking it skips nobody.
    AND (SELECT count(*) FROM (ACTIVE_JOBS) a WHERE a.stage = :s2 AND a.project_id IS NOT NULL)
      + (SELECT count(*) FROM tasks q WHERE q.current_stage = :s2 AND q.state = 'queued') < :wip
    AND (SELECT count(*) FROM (ACTIVE_JOBS) a WHERE a.project_id = :pid)
      + (SELECT count(*) FROM tasks q
         WHERE q.current_stage = ANY(CAST(:agent_stages AS varchar[])) AND q.state = 'queued'
           AND q.project_id = :pid) <= :per_project
    AND NOT EXISTS (SELECT 1 FROM executions p
                    WHERE p.task_id = :tid AND p.stage = :s2 AND p.attempt >= :attempt)
  RETURNING id
), ex AS (
  UPDATE executions SET status = 'completed', result_status = :result_status, result_summary = :summary,
         result_details = :details, usage = :usage, started_at = coalesce(:started_at, started_at),
         completed_at = :completed_at, runner_id = coalesce(:runner_id, runner_id),
         outgoing_handoff = :payload
  WHERE id = :eid AND status IN ('pending', 'running', 'paused') AND idempotency_key = :key
    AND EXISTS (SELECT 1 FROM t)
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
       (SELECT count(*) FROM h) + (SELECT count(*) FROM e2) AS written,
       (SELECT coalesce(json_object_agg(o.msg_id, o.id), '{}'::json) FROM o) AS outbox_ids,
       (SELECT count(*) FROM tasks q WHERE q.current_stage = :s1 AND q.state = 'queued') AS queued_behind
""".replace("ACTIVE_JOBS", ACTIVE_JOBS)
).bindparams(
    bindparam("payload", type_=JSONB),
    bindparam("details", type_=JSONB),
    bindparam("usage", type_=JSONB),
    bindparam("now", type_=DateTime(timezone=True)),
    bindparam("seen", type_=DateTime(timezone=True)),
    bindparam("started_at", type_=DateTime(timezone=True)),
    bindparam("completed_at", type_=DateTime(timezone=True)),
)


# The hop connection's session. No bitmap scans: the WIP guards count the active executions through
# their partial index, whose entries for finished executions stay until a vacuum (status is indexed,
# so ending an execution is no HOT update). An index scan marks the dead entries it meets as such, so
# the next count skips them; a bitmap scan, which the planner picks once it expects a few dozen
# active jobs, visits every one of them again, each hop: ~4,000 entries and 0.6 to 4 ms per count within
# a minute of a busy board (tests/orchestrator/test_load_query.py). Nothing else runs on it.
HOP_SESSION = {"enable_bitmapscan": "off"}


class HopStatementFailed(Exception):
    """The statement failed in the database (nothing was written): the locked path takes the Result."""


class HopConnection:
    """The hop statement, prepared once on a connection kept for it (autocommit; a batch is one
    transaction). A lost connection is dropped and raises ConnectionResetError (the Result is nak'ed
    and comes back); the next hop opens a new one."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        compiled = HOP.compile(dialect=engine.dialect)
        self._sql = compiled.string
        self._names: tuple[str, ...] = tuple(compiled.positiontup or ())
        processors = compiled._bind_processors  # JSONB values to the text the connection's codec sends
        self._process: dict[str, Callable[[Any], Any]] = {
            n: cast(Callable[[Any], Any], processors[n]) for n in self._names if n in processors
        }
        self._held: AsyncConnection | None = None
        self._statement: Any = None  # asyncpg.prepared_stmt.PreparedStatement
        self._driver: Any = None  # asyncpg.Connection

    def _args(self, params: dict[str, Any]) -> list[Any]:
        """Positional, each through SQLAlchemy's processor where it has one (None to JSON null too)."""
        return [self._process[n](params[n]) if n in self._process else params[n] for n in self._names]

    async def _open(self) -> None:
        if self._statement is not None:
            return
        held = await self._engine.connect()
        try:
            held = await held.execution_options(isolation_level="AUTOCOMMIT")
            raw = await held.get_raw_connection()
            driver = raw.driver_connection
            for name, value in HOP_SESSION.items():
                await driver.execute(f"SET {name} = {value}")  # type: ignore[union-attr]
            self._statement = await driver.prepare(self._sql)  # type: ignore[union-attr]
        except BaseException:
            await held.invalidate()
            await held.close()
            raise
        self._held, self._driver = held, driver

    async def run(
        self, batch: Sequence[dict[str, Any]]
    ) -> tuple[list[dict[str, Any] | HopStatementFailed], bool]:
        """The statement for each of `batch`, and whether they were one transaction: alone, autocommit;
        more, in one transaction, falling back to one at a time when one of them fails (then nothing of
        the transaction was written)."""
        lost: BaseException
        try:
            return await self._run(batch)
        except asyncpg.PostgresError as err:
            if not _lost(err):  # the statement could not be prepared: the locked path takes them all
                return [HopStatementFailed(f"{type(err).__name__}: {err}") for _ in batch], False
            lost = err
        except (TimeoutError, asyncpg.InterfaceError, OSError) as err:
            lost = err
        await self.close()
        what = type(lost).__name__
        raise ConnectionResetError(f"the hop's database connection was lost ({what})") from lost

    async def _run(
        self, batch: Sequence[dict[str, Any]]
    ) -> tuple[list[dict[str, Any] | HopStatementFailed], bool]:
        await self._open()
        if len(batch) > 1:
            try:
                async with self._driver.transaction():
                    return [dict(await self._statement.fetchrow(*self._args(p))) for p in batch], True
            except asyncpg.PostgresError as err:
                if _lost(err):
                    raise
                # one at a time below, each its own statement
        rows: list[dict[str, Any] | HopStatementFailed] = []
        for p in batch:
            try:
                rows.append(dict(await self._statement.fetchrow(*self._args(p))))
            except asyncpg.PostgresError as err:
                if _lost(err):
                    raise
                rows.append(HopStatementFailed(f"{type(err).__name__}: {err}"))
        return rows, False

    async def close(self) -> None:
        """Drop the connection (never back to the pool: it has HOP_SESSION's settings)."""
        held, self._held, self._statement, self._driver = self._held, None, None, None
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
    ) -> None:
        self._held = held or (lambda: ((), ()))  # paused projects and tasks: the locked path decides
        self._connection = HopConnection(engine)
        self._lock = lock  # the dispatch lock: WIP and project slots are counted by one writer at a time
        self._outbox = outbox
        self._ctx = ctx
        self.applied = 0
        self.declined = 0
        self.guard_failed = 0
        self.queued_behind = False  # the last hop saw tasks queued in the stage it freed
        self.batches = 0  # transactions that applied more than one hop
        self._queue: list[tuple[_Pending, asyncio.Future[bool]]] = []

    async def close(self) -> None:
        """Give the statement's connection back (before the engine is disposed)."""
        async with self._lock:
            await self._connection.close()

    def plan(self, result: Result, paused: bool) -> tuple[Inflight, Decision] | None:
        """The decision, when this result is a plain hop the statement can apply."""
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
        nxt = ctx.pipeline.stage(d.place.stage)
        plain = (
            d.handoff is not None
            and d.bug is None
            and not d.children
            and not d.completed
            and not d.approval_requested
            and d.execution_status == ExecutionStatus.COMPLETED
            and d.place.state == TaskState.QUEUED
            and d.place.stage != stage.name
            and d.rework_count in (None, entry.task.rework_count)
            and nxt is not None
            and nxt.agent is not None
            and nxt.agent in ctx.agent_ids
            and not d.handoff.requires_approval
        )
        return (entry, d) if plain else None

    async def try_apply(self, result: Result, *, paused: bool) -> bool:
        planned = self.plan(result, paused)
        if planned is None:
            self.declined += 1
            return False
        entry, d = planned
        ctx, pipeline = self._ctx, self._ctx.pipeline
        if d.handoff is None:  # plan() checked; for the type checker
            return False
        s1, s2 = entry.job.stage, d.place.stage
        nxt = pipeline.stage(s2)
        attempt = ctx.memory.next_attempt(entry.task.id, s2)
        if nxt is None or nxt.agent is None or attempt is None or ctx.ids is None:
            return False
        eid2, hid = await ctx.ids.execution(), await ctx.ids.handoff()
        now = utcnow()
        project, task = entry.project, entry.task
        key2 = idempotency_key(project.slug, task.task_key, s2, attempt)
        payload = dict(d.handoff.payload)
        actor = f"agent:{entry.job.role}"
        queued = replace(
            task,
            current_stage=s2,
            state=TaskState.QUEUED.value,
            status_reason=None,
            updated_at=now,
            current_execution_id=None,
        )
        running = replace(queued, state=TaskState.RUNNING.value, current_execution_id=eid2)
        job = _next_job(entry.job, eid2, key2, s2, nxt.agent, attempt, payload, nxt.timeout_seconds, now)
        messages = Messages()
        messages.send_job(job)  # first: published first
        common = {"project": project.slug, "task_key": task.task_key}
        # The events the locked path would send for the same change (result applied, then dispatched).
        for event in (
            ExecutionFinished(
                **common,
                actor=actor,
                execution_id=result.job_id,
                stage=s1,
                status=result.status.value,
                summary=result.summary,
                usage=result.usage,
            ),
            TaskMoved(
                **common,
                actor=actor,
                task=ctx.snapshot_cached(queued),
                from_stage=s1,
                to_stage=s2,
                handoff_id=hid,
                notes=d.handoff.notes,
            ),
            TaskStateChanged(
                **common,
                actor=actor,
                task=ctx.snapshot_cached(queued),
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
        params: dict[str, Any] = {
            "tid": task.id,
            "eid": result.job_id,
            "eid2": eid2,
            "hid": hid,
            "s1": s1,
            "s2": s2,
            "now": now,
            "seen": task.updated_at,
            "pid": task.project_id,
            "wip": nxt.wip_limit if nxt.wip_limit is not None else 2**31 - 1,
            "per_project": pipeline.max_parallel_per_project,
            "agent_stages": pipeline.agent_stages,
            "attempt": attempt,
            "key": result.idempotency_key,
            "key2": key2,
            "result_status": result.status.value,
            "summary": result.summary,
            "details": result_facts.result_details(result),
            "usage": result.usage.model_dump(mode="json"),
            "started_at": result.started_at,
            "completed_at": result.finished_at,
            "runner_id": result.runner_id[:100] or None,
            "payload": payload,
            "notes": d.handoff.notes or None,
            "actor": actor[:100],
            "agent_id": ctx.agent_ids[nxt.agent],
            "cwd": project.workspace,
            "subjects": [m.subject for m in messages.messages],
            "payloads": [m.payload for m in messages.messages],
            "msg_ids": [m.msg_id for m in messages.messages],
        }
        return await self._apply(
            _Pending(result.job_id, params, messages.messages, Inflight(running, job, project))
        )

    async def _apply(self, pending: _Pending) -> bool:
        """Queue the statement; whoever holds the lock applies everything queued by then in one
        transaction (one commit for many hops under load; alone, one autocommit statement). True once
        the next Job is acked by JetStream."""
        done: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
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
        rows, batched = await self._connection.run([p.params for p, _ in unique]) if unique else ([], False)
        self.batches += batched
        written: list[_Written] = []
        memory = self._ctx.memory
        self.queued_behind = False
        for (p, done), row in zip(unique, rows, strict=True):
            if isinstance(row, HopStatementFailed):
                done.set_exception(row)
            elif not row["moved"]:
                self.guard_failed += 1
                memory.forget_task(p.entry.task.id)  # the locked path re-reads it and dispatches
                done.set_result(False)
            else:
                memory.ended(p.execution_id)
                memory.started(p.entry)
                self.queued_behind = self.queued_behind or bool(row["queued_behind"])
                ids = row["outbox_ids"]
                written.append(_Written([Stored(ids[m.msg_id], m) for m in p.messages], done))
        return written

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
        for w in written:
            w.done.set_result(True)


@dataclass(slots=True)
class _Pending:
    execution_id: int  # the Result's
    params: dict[str, Any]
    messages: list[Outgoing]
    entry: Inflight  # what memory holds once it moved


@dataclass(slots=True)
class _Written:
    stored: list[Stored]
    done: asyncio.Future[bool]


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
